import pytest
import torch

from ddpm.schedules import ScheduleConfig, make_schedule


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests are small; one intra-op thread avoids oversubscription on 2-core machines."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def linear_schedule():
    return make_schedule(ScheduleConfig(schedule="linear", num_timesteps=1000))
