from gateway.app import create_app


def test_healthz(client):
    assert client.get("/healthz").status_code == 200


def test_readyz_ok_on_embedded_defaults(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_ok_on_postgres_and_redis(integration_runtime):
    response = create_app(runtime=integration_runtime).test_client().get("/readyz")
    assert response.status_code == 200, response.json


def test_readyz_503_when_redis_down(runtime):
    import redis

    runtime.redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    response = create_app(runtime=runtime).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"].startswith("down")
    assert response.json["checks"]["database"] == "ok"


def test_readyz_503_when_database_down(runtime):
    from registry.db import Database

    runtime.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    response = create_app(runtime=runtime).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("down")
