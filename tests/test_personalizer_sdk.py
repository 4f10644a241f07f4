"""Microsoft's own Personalizer client (``azure-cognitiveservices-personalizer``, the v1.0 SDK) against
a real ``backdrop serve`` HTTP server, on both event-log backends: a Personalizer application points
its endpoint here and its Rank, Activate and Reward calls, and its error handling, keep working."""

from __future__ import annotations

import pytest

from backdrop.serving.app import create_app
from backdrop.serving.settings import load_settings
from conftest import need, uvicorn_server

KEY = "pz-key"


@pytest.fixture
def endpoint(small_store, db_url):
    settings = load_settings(None, store=small_store, db=db_url, api_key=KEY, log_timeout_ms=2000.0, join_window_s=60.0, commit_grace_s=2.5)
    app = create_app(settings)
    with uvicorn_server(app) as port:
        yield f"http://127.0.0.1:{port}", app


def _sdk():
    try:
        from azure.cognitiveservices import personalizer
        from msrest.authentication import CognitiveServicesCredentials
    except ImportError:
        need(False, "azure-cognitiveservices-personalizer (pip install -e '.[test]')")
    return personalizer, CognitiveServicesCredentials


def test_the_personalizer_sdk_ranks_activates_and_rewards(endpoint):
    personalizer, credentials = _sdk()
    from azure.cognitiveservices.personalizer.models import ErrorResponseException, RankableAction, RankRequest

    url, app = endpoint
    client = personalizer.PersonalizerClient(url, credentials(KEY))
    actions = [  # the SDK quickstart's actions and context
        RankableAction(id="pasta", features=[{"taste": "salty", "spice_level": "medium"}, {"nutrition_level": 5, "cuisine": "italian"}]),
        RankableAction(id="ice cream", features=[{"taste": "sweet", "spice_level": "none"}, {"nutritional_level": 2}]),
        RankableAction(id="juice", features=[{"taste": "sweet", "spice_level": "none"}, {"nutritional_level": 5}, {"drink": True}]),
    ]
    request = RankRequest(
        actions=actions,
        context_features=[{"timeofday": "Morning"}, {"taste": "sweet"}],
        excluded_actions=["juice"],
        event_id="sdk-1",
        defer_activation=True,
    )
    response = client.rank(rank_request=request)
    assert response.event_id == "sdk-1" and response.reward_action_id in ("pasta", "ice cream")
    assert [r.id for r in response.ranking][-1] == "juice" and response.ranking[-1].probability == 0.0
    assert response.ranking[0].id == response.reward_action_id
    log = app.state.service.log
    logged = log.get_by_request("personalizer:sdk-1")
    assert not logged.activate and logged.user_features == {"timeofday": "Morning", "taste": "sweet"}

    client.events.activate("sdk-1")
    client.events.reward(event_id="sdk-1", value=1.0)
    logged = log.get_decision(logged.decision_id)
    assert logged.activate and log.rewards()[0].reward == 1.0

    with pytest.raises(ErrorResponseException) as reused:
        client.rank(rank_request=request)
    assert reused.value.error.error.code == "Conflict"
    from msrest.exceptions import HttpOperationError

    with pytest.raises(HttpOperationError) as unknown:  # the SDK's events operations raise the generic error
        client.events.reward(event_id="never-ranked", value=1.0)
    assert unknown.value.response.status_code == 404 and unknown.value.response.json()["error"]["code"] == "ResourceNotFound"
    wrong_key = personalizer.PersonalizerClient(url, credentials("wrong"))
    with pytest.raises(ErrorResponseException) as refused:
        wrong_key.rank(rank_request=RankRequest(actions=actions))
    assert refused.value.error.error.code == "Unauthorized"

    generated = client.rank(rank_request=RankRequest(actions=actions, context_features=[{"timeofday": "Evening"}]))
    assert len(generated.event_id) == 32 and log.get_by_request(f"personalizer:{generated.event_id}").activate
