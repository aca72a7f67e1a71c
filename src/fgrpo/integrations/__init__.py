"""F-GRPO on other training engines: TRL (:mod:`fgrpo.integrations.trl`) and verl
(:mod:`fgrpo.integrations.verl`).

fgrpo's answer format, parser, phase rewards, phase masks and advantage estimators are the
product; the engines are the transport. Each module imports its engine itself (TRL at
import time, as an optional extra; verl lazily, so that its module imports without verl).
Nothing else in fgrpo imports this package.
"""
