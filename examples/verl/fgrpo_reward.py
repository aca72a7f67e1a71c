"""verl's custom reward file for F-GRPO (reward.custom_reward_function.path=this file,
name=compute_score). Loading it registers fgrpo's estimators and reward manager in the
process that loads it; main_fgrpo.py registers them in every Ray worker as well."""

from fgrpo.integrations.verl import compute_score, register_with_verl

register_with_verl()

__all__ = ["compute_score"]
