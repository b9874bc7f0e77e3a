"""The seed page's FastAPI + SQLAlchemy users service, corrected so that it runs, as it runs
behind the tlsward sidecar: tlsward terminates HTTPS in front of it and owns its connection to
CockroachDB, so this app speaks plain HTTP on a unix socket (or loopback) and plain PostgreSQL
wire protocol to tlsward's database socket. Its code has no TLS setting at all.

What was changed from the page, and why:
- `Fastapi` is `FastAPI` (the page's import fails);
- the dialect `cockroachdb+sickql` is `postgresql+psycopg2`. Against CockroachDB itself use
  `cockroachdb+psycopg2` (the sqlalchemy-cockroachdb package) for its transaction retries; the
  tests here run against PostgreSQL set up like a secure CockroachDB;
- `connect_args={"ssl_context": ...}`, `sslmode`, `sslrootcert` and the password are gone: the
  hop to the database is tlsward's (verify-full, client certificate, rotation without restarts);
  the app connects to its socket, `host=/run/tlsward port=26257`;
- `POST /users` is added so that the example writes as well as reads (the page only reads).

As in the page: synchronous endpoints (FastAPI runs them in its thread pool), SQLAlchemy's
QueuePool with `pool_pre_ping=True` (which also reconnects after tlsward closes a session that
reached --db-max-session-age), one Session per request, textual SQL.

Environment: DATABASE_URL (default postgresql+psycopg2://app@/app?host=/run/tlsward&port=26257).
The verified caller of `--require-token` arrives as the X-Tlsward-Subject header.
"""
import os

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+psycopg2://app@/app?host=/run/tlsward&port=26257")
engine = create_engine(DATABASE_URL, pool_pre_ping=True)
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


class NewUser(BaseModel):
    username: str
    email: str


@app.post("/users", status_code=201)
def create_user(user: NewUser, db: Session = Depends(get_db), x_tlsward_subject: str | None = Header(default=None)):
    query = text("INSERT INTO users (username, email) VALUES (:u, :e) RETURNING id")
    new_id = db.execute(query, {"u": user.username, "e": user.email}).scalar_one()
    db.commit()
    return {"id": new_id, "username": user.username, "email": user.email, "created_by": x_tlsward_subject}


@app.get("/healthz")
def healthz(db: Session = Depends(get_db)):
    db.execute(text("SELECT 1"))
    return {"ok": True}
