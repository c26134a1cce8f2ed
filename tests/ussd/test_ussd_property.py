"""Property: whatever a caller types, every hop is a well-formed 200 answer, never a 5xx."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ussd.support import PHONE, PIN

token = st.one_of(
    st.sampled_from(["", "0", "00", "1", "2", "3", "4", "98", "#", "*", "**", "12345678", "05092014", PIN,
                     "000000", "1234"]),
    st.text(alphabet="0123456789*#", max_size=12),
    st.text(alphabet="abcXYZ 0123456789*#", max_size=20),
    st.text(alphabet="0123456789*#abc", min_size=500, max_size=500),
    st.text(max_size=30),
)
_ids = itertools.count()


def well_formed(response) -> str:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.startswith(("CON ", "END ")), body
    assert len(body) <= 160, body
    assert all(ch == "\n" or " " <= ch <= "~" for ch in body), body
    return body


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(inputs=st.lists(token, max_size=8), phone=st.sampled_from([PHONE, "0712345678", "+254733999888"]))
def test_any_input_sequence_gets_well_formed_answers(stack, inputs, phone):
    _, _, world, client = stack
    if not _seeded(world):
        world.learner(verified=True)
        world.activate()
    session_id = f"prop-{next(_ids)}"
    texts = [""] + ["*".join(inputs[: i + 1]) for i in range(len(inputs))]
    for text in texts:
        body = well_formed(client.post("/ussd/africastalking", data={
            "sessionId": session_id, "phoneNumber": phone, "serviceCode": "*384*1234#", "text": text}))
        if body.startswith("END "):
            break


def _seeded(world) -> bool:
    from registry.models import Learner

    with world.db.transaction() as session:
        return session.query(Learner).count() > 0
