"""The seed page's FastAPI + SQLAlchemy users service, made to run; the benchmarks' peer.

The page's listing does not run as printed. What was changed, and nothing else:
- `Fastapi` is `FastAPI`;
- the dialect `cockroachdb+sickql` is `postgresql+psycopg2` (the benchmark database is
  PostgreSQL set up like a secure CockroachDB; against CockroachDB itself the dialect is
  `cockroachdb+psycopg2` from the sqlalchemy-cockroachdb package);
- the database demands a client certificate, so `sslcert`/`sslkey` join `sslrootcert`, and
  every path comes from the environment instead of `/path/to/...`;
- `connect_args={"ssl_context": ...}` is dropped: psycopg2 hands TLS to libpq, which rejects
  that argument; `sslmode=verify-full` in the URL is what makes libpq verify the server.

As in the page: a synchronous endpoint (FastAPI runs it in its thread pool), SQLAlchemy's
default QueuePool with `pool_pre_ping=True`, one Session per request, a textual SELECT.

Environment: DATABASE_URL (default postgresql+psycopg2://app@localhost:26257/app),
DB_SSLROOTCERT (the CA of the database's certificate), DB_SSLCERT and DB_SSLKEY (the client
certificate, CN = the SQL user, and its key).
"""
import os

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

TLS_QUERY = {
    "sslmode": "verify-full",
    "sslrootcert": os.environ["DB_SSLROOTCERT"],
    "sslcert": os.environ["DB_SSLCERT"],
    "sslkey": os.environ["DB_SSLKEY"],
}
url = make_url(os.environ.get("DATABASE_URL", "postgresql+psycopg2://app@localhost:26257/app"))
engine = create_engine(url.update_query_dict(TLS_QUERY), pool_pre_ping=True)
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

app = FastAPI()


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


@app.get("/users/{user_id}")
def read_user(user_id: int, db: Session = Depends(get_db)):
    query = text("SELECT id, username, email FROM users WHERE id = :uid")
    row = db.execute(query, {"uid": user_id}).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="User not found")
    return {"id": row[0], "username": row[1], "email": row[2]}
