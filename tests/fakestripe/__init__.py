"""fakestripe: a stateful fake of the Stripe HTTP API for tiergate's tests.

The real ``stripe`` SDK talks to it over HTTP on 127.0.0.1::

    from tests.fakestripe import FakeStripe

    with FakeStripe() as fake:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.api_base})
        price = client.v1.prices.create({...})

See ``tests/fakestripe/README.md`` for what it implements.
"""

from .errors import StripeError
from .proration import prorate, round_half_away
from .server import DEFAULT_NOW, FakeClock, FakeStripe, RecordedRequest
from .state import API_VERSION
from .webhooks import Delivery, deliver, event_payload, sign_payload

__all__ = [
    "API_VERSION", "DEFAULT_NOW", "Delivery", "FakeClock", "FakeStripe", "RecordedRequest",
    "StripeError", "deliver", "event_payload", "prorate", "round_half_away", "sign_payload",
]
