"""Old import path of the train and sft configs: they live in :mod:`fgrpo.config.commands`."""

from fgrpo.config.commands import (  # noqa: F401
    RESUME_MAY_CHANGE,
    DataOptions,
    ModelOptions,
    SFTConfig,
    TrainConfig,
    check_at_least,
    check_data_options,
    check_resume_config,
    check_toy_pool,
)
