"""verl's PPO entry point (verl.trainer.main_ppo) with fgrpo's estimator and reward manager
registered in every Ray worker (a worker_process_setup_hook), since verl computes
advantages and rewards in actors, not in this process. Takes verl's Hydra overrides.

    python examples/verl/main_fgrpo.py algorithm.adv_estimator=fgrpo ...   (see run_qwen3_4b_8gpu.sh)
"""

from __future__ import annotations

import ray
from verl.trainer import main_ppo
from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

from fgrpo.integrations.verl import register_with_verl

if __name__ == "__main__":
    register_with_verl()
    runtime_env = get_ppo_ray_runtime_env()
    runtime_env["worker_process_setup_hook"] = "fgrpo.integrations.verl.register_with_verl"
    ray.init(runtime_env=runtime_env)  # run_ppo keeps an initialized Ray as it is
    main_ppo.main()
