from gateway.app import create_app
from tests.conftest import unreachable_redis


def test_healthz(client):
    assert client.get("/healthz").status_code == 200


def test_readyz_ok_on_embedded_defaults(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok", "schema": "ok"}


def test_readyz_ok_on_postgres_and_redis(integration_runtime):
    response = create_app(runtime=integration_runtime).test_client().get("/readyz")
    assert response.status_code == 200, response.json


def test_readyz_503_when_redis_down(runtime):
    runtime.redis = unreachable_redis()
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


def test_readyz_503_until_the_schema_is_migrated(runtime, tmp_path):
    """A database that answers but lacks this code's tables (never migrated, or behind) is not
    ready: every hop would answer "busy". A schema newer than this code knows is (a rolling upgrade)."""
    from sqlalchemy import text

    from registry.db import Database
    from registry.migrate import revisions, upgrade

    runtime.db = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    client = create_app(runtime=runtime).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["schema"] == "not migrated: run `elimu db upgrade`"
    upgrade(runtime.db.engine, revisions()[-2])
    behind = client.get("/readyz").json["checks"]["schema"]
    assert behind == f"at {revisions()[-2]}, this code needs {revisions()[-1]}: run `elimu db upgrade`"
    upgrade(runtime.db.engine)
    assert client.get("/readyz").status_code == 200
    with runtime.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    assert client.get("/readyz").status_code == 200
    runtime.db.dispose()
