from tests.client.live import live_tiergate  # noqa: F401 (fixture)
