from .scheduling_multinomial import (
    MultinomialCorrectorOutput,
    MultinomialLossOutput,
    MultinomialScheduler,
    MultinomialSchedulerOutput,
)
from .timestep_sampler import ImportanceTimestepSampler
