import pytest

from .fake_cloud import FakeCloud
from .helpers import RunningAgent, agent_settings


@pytest.fixture
def cloud():
    fake = FakeCloud()
    fake.up()
    yield fake
    fake.down()


@pytest.fixture
def start_agent(cloud, tmp_path):
    """start_agent(**settings) -> a RunningAgent on 127.0.0.1 (stopped at the end)."""
    running = []

    def start(**overrides):
        overrides.setdefault("data_dir", tmp_path / "agent")
        agent = RunningAgent(agent_settings(cloud.url, **overrides)).start()
        running.append(agent)
        return agent

    yield start
    for agent in running:
        if agent.agent is not None:
            agent.stop()


@pytest.fixture
def agent(start_agent, cloud):
    running = start_agent()
    running.wait_registry(cloud)
    return running
