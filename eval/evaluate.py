"""Context-retrieval eval: the service's ranker against plain BM25 baselines (bm25s).

    .venv/bin/python eval/evaluate.py [--set facts|conversations|both] [--database-url URL]
                                      [--json out.json] [--show-misses] [--embeddings]

Two sets: "facts" (eval/dataset.json, paraphrased facts about four users) and
"conversations" (eval/conversations.json, multi-session dialogues stored one memory per
turn, questions labelled single / when / multihop / inference). Both by default.

Loads a set into its own database (default
postgres://postgres@127.0.0.1:5432/memory_eval, created and migrated when missing) under
owner "eval", replacing that owner's earlier rows, through MemorySerializer and
create_memory (so content is encrypted and the blind index is the real one), then asks
every question through memories.retrieval.retrieve_context (what the context view calls)
and through bm25s over the same users' decrypted memories. Reports recall@5, recall@10 and
MRR (first relevant memory within the top 10), overall and per group: per question kind
for the conversations, per user for the facts.

Embeddings stay off unless --embeddings is given. Then OPENAI_EMBEDDING_MODEL and the
OpenAI settings come from the environment when OPENAI_BASE_URL is set; otherwise the
script starts eval/embedding_server.py (all-MiniLM-L6-v2 on 127.0.0.1, needs
eval/requirements-eval.txt) for the run and stops it at the end.
"""

import argparse
import atexit
import base64
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DATASET = Path(__file__).resolve().parent / "dataset.json"
CONVERSATIONS = Path(__file__).resolve().parent / "conversations.json"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/memory_eval"
OWNER_ID = "eval"
TOP_K = 10
CUTOFFS = (5, 10)
EVAL_NAMESPACE = uuid.UUID("5d0c3c53-8f1e-4c7a-9a57-0e4a1f0c7e11")

# Synthetic data only: a fixed key keeps reruns consistent and never touches data/secrets.json.
EVAL_ENCRYPTION_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"ai-memory-service eval dataset").digest()
).decode()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"database to load the eval set into (default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--set",
        dest="which",
        choices=("facts", "conversations", "both"),
        default="both",
        help="which eval set to run (default both)",
    )
    parser.add_argument("--dataset", type=Path, default=DATASET, help="facts set (JSON)")
    parser.add_argument(
        "--conversations", type=Path, default=CONVERSATIONS, help="conversational set (JSON)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write results as JSON")
    parser.add_argument(
        "--show-misses",
        action="store_true",
        help="list questions where the service misses relevant memories in its top 10",
    )
    parser.add_argument(
        "--embeddings",
        action="store_true",
        help="keep OPENAI_EMBEDDING_MODEL from the environment (off by default)",
    )
    return parser.parse_args(argv)


# --- Setup ------------------------------------------------------------------------------


def ensure_postgres_database(url: str) -> None:
    """Create the target database when it does not exist (PostgreSQL URLs only)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        return
    import psycopg
    from psycopg import sql

    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise SystemExit(f"--database-url has no database name: {url}")
    conninfo = dict(
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        connect_timeout=5,
    )
    conninfo = {k: v for k, v in conninfo.items() if v is not None}
    try:
        with psycopg.connect(dbname=name, **conninfo):
            return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise SystemExit(f"Cannot connect to {name!r}: {exc}") from None
    # The server's maintenance database is used only to issue CREATE DATABASE.
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"created database {name!r}", file=sys.stderr)


def start_embedding_server() -> subprocess.Popen:
    """eval/embedding_server.py on a free loopback port; the OpenAI settings point at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("embedding_server.py")), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        text=True,
    )
    atexit.register(server.terminate)
    line = server.stdout.readline()  # printed once the model is loaded and the port bound
    if not line.startswith("embeddings on"):
        raise SystemExit("eval/embedding_server.py did not start (eval/requirements-eval.txt?)")
    os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    os.environ["OPENAI_API_KEY"] = "local"
    os.environ["OPENAI_EMBEDDING_MODEL"] = "all-MiniLM-L6-v2"
    # The service's 5 s deadline suits a request; loading the set sends batches of 64
    # texts to a model on the same CPUs, which a loaded machine can take longer to embed
    # (the backfill then stops at the breaker).
    os.environ.setdefault("OPENAI_EMBEDDING_TIMEOUT_SECONDS", "120")
    print(f"started the local embeddings server: {line.strip()}", file=sys.stderr)
    return server


def setup_django(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "memoryproject.settings"
    os.environ["DEBUG"] = "true"
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("ENCRYPTION_KEY", EVAL_ENCRYPTION_KEY)
    os.environ.setdefault("SECRET_KEY", "eval-only-not-a-secret")
    if not args.embeddings:
        os.environ["OPENAI_EMBEDDING_MODEL"] = ""
    elif not os.environ.get("OPENAI_BASE_URL"):
        start_embedding_server()
    if not os.environ.get("LOG_LEVEL"):
        os.environ["LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))
    ensure_postgres_database(args.database_url)

    import django
    from django.core.management import call_command

    django.setup()
    import bm25s  # sets its logger to DEBUG on import; quiet it after that

    logging.getLogger(bm25s.__name__).setLevel(logging.WARNING)
    call_command("migrate", interactive=False, verbosity=0)


# --- Loading ----------------------------------------------------------------------------


def conversations_as_dataset(conversations: dict) -> dict:
    """The conversational set in the facts set's shape: one memory per turn, as a client
    would store a dialogue. Content "<Speaker>: <text>" (plus " [image: <caption>]"),
    type event, no importance, the session date and turn id only in metadata, created in
    turn order a second apart (all just now: an ingest, not the conversation's dates)."""
    users = []
    for conversation in conversations["conversations"]:
        turns = [
            (session["date"], turn)
            for session in conversation["sessions"]
            for turn in session["turns"]
        ]
        memories = []
        for i, (date, turn) in enumerate(turns):
            content = f"{turn['speaker']}: {turn['text']}"
            if turn.get("image"):
                content += f" [image: {turn['image']}]"
            memories.append(
                {
                    "id": turn["id"],
                    "type": "event",
                    "content": content,
                    "importance": None,
                    "seconds_ago": len(turns) - i,
                    "metadata": {"session_date": date, "turn_id": turn["id"]},
                }
            )
        questions = [
            {"query": q["query"], "relevant": q["evidence"], "kind": q["kind"]}
            for q in conversation["questions"]
        ]
        users.append(
            {"user_id": conversation["user_id"], "memories": memories, "questions": questions}
        )
    return {"users": users}


def load_dataset(dataset: dict) -> dict[str, dict]:
    """Replace owner "eval"'s memories of the dataset's users with the dataset's. Returns,
    per user, the map dataset id -> Memory id."""
    from django.db import transaction
    from django.utils import timezone

    from memories.models import Memory
    from memories.serializers import MemorySerializer
    from memories.services import create_memory

    now = timezone.now()
    id_maps: dict[str, dict] = {}
    with transaction.atomic():
        # only("id"): deleting must not need to decrypt rows left by an earlier key.
        users = [user["user_id"] for user in dataset["users"]]
        Memory.objects.filter(owner_id=OWNER_ID, user_id__in=users).only("id").delete()
        for user in dataset["users"]:
            id_map = id_maps.setdefault(user["user_id"], {})
            for item in user["memories"]:
                created_at = now - timedelta(
                    days=item.get("days_ago", 0), seconds=item.get("seconds_ago", 0)
                )
                data = {
                    "user_id": user["user_id"],
                    "type": item["type"],
                    "content": item["content"],
                    "importance": item["importance"],
                }
                if item.get("metadata"):
                    data["metadata"] = item["metadata"]
                serializer = MemorySerializer(data=data)
                if not serializer.is_valid():
                    raise SystemExit(f"{user['user_id']}/{item['id']}: {serializer.errors}")
                # A stable id per dataset memory: the ranker breaks exact score ties by id,
                # so random ids would make reruns differ at the top-10 boundary.
                stable_id = uuid.uuid5(EVAL_NAMESPACE, f"{user['user_id']}/{item['id']}")
                memory = create_memory(
                    owner_id=OWNER_ID,
                    data={**serializer.validated_data, "id": stable_id},
                    now=created_at,
                )
                id_map[item["id"]] = memory.id
    return id_maps


# --- Rankers ----------------------------------------------------------------------------


def service_ranker(user_id: str, to_dataset_id: dict):
    from memories.retrieval import retrieve_context

    def rank(query: str) -> list[str]:
        memories = retrieve_context(owner_id=OWNER_ID, user_id=user_id, query=query, limit=TOP_K)
        return [to_dataset_id[m.id] for m in memories]

    return rank


def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:
        import snowballstemmer

        return snowballstemmer.stemmer("english")


@dataclass
class BM25Config:
    name: str
    stopwords: str | None
    stem: bool


BASELINES = (
    BM25Config("bm25s (no stem, no stop words)", None, False),
    # "en" in bm25s is Lucene's 33-word list; "en_plus" is the full (NLTK) English list.
    BM25Config("bm25s + Snowball + en_plus stop words", "en_plus", True),
    BM25Config("bm25s + Snowball + en (33) stop words", "en", True),
)


def bm25_ranker(config: BM25Config, doc_ids: list[str], texts: list[str]):
    """Plain bm25s over the user's plaintext. Only documents sharing a term with the query
    are returned; a query with no indexable tokens returns nothing."""
    import bm25s

    stemmer = _stemmer() if config.stem else None
    kwargs = dict(stopwords=config.stopwords, stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, **kwargs), show_progress=False)
    vocab = retriever.vocab_dict

    def rank(query: str) -> list[str]:
        words = bm25s.tokenize([query], return_ids=False, **kwargs)[0]
        words = [w for w in words if w in vocab]
        if not words:
            return []
        scores = retriever.get_scores(words)
        order = sorted(range(len(doc_ids)), key=lambda i: (-scores[i], i))
        return [doc_ids[i] for i in order[:TOP_K] if scores[i] > 0]

    return rank


# --- Metrics ----------------------------------------------------------------------------


@dataclass
class Method:
    name: str
    per_question: list[dict] = field(default_factory=list)


def score_question(ranked: list[str], relevant: list[str]) -> dict:
    relevant_set = set(relevant)
    result = {
        f"recall@{k}": len(relevant_set & set(ranked[:k])) / len(relevant_set) for k in CUTOFFS
    }
    first = next((i for i, mid in enumerate(ranked[:TOP_K], 1) if mid in relevant_set), None)
    result["mrr"] = 1 / first if first else 0.0
    return result


METRICS = (*(f"recall@{k}" for k in CUTOFFS), "mrr")


def averages(rows: list[dict]) -> dict:
    return {m: (sum(r[m] for r in rows) / len(rows) if rows else 0.0) for m in METRICS}


def evaluate(dataset: dict, id_maps: dict[str, dict]) -> tuple[list[Method], list[dict]]:
    from memories.models import Memory

    methods = [Method("ours (retrieve_context)")] + [Method(c.name) for c in BASELINES]
    misses = []
    for user in dataset["users"]:
        user_id = user["user_id"]
        id_map = id_maps[user_id]
        to_dataset_id = {mid: did for did, mid in id_map.items()}
        stored = {
            m.id: m.content for m in Memory.objects.filter(owner_id=OWNER_ID, user_id=user_id)
        }
        doc_ids = [to_dataset_id[mid] for mid in stored]
        texts = list(stored.values())
        content = dict(zip(doc_ids, texts, strict=True))
        rankers = [service_ranker(user_id, to_dataset_id)] + [
            bm25_ranker(c, doc_ids, texts) for c in BASELINES
        ]
        for question in user["questions"]:
            for method, rank in zip(methods, rankers, strict=True):
                ranked = rank(question["query"])
                row = {
                    "user_id": user_id,
                    "kind": question.get("kind", "-"),
                    "query": question["query"],
                    "relevant": question["relevant"],
                    "ranked": ranked,
                    **score_question(ranked, question["relevant"]),
                }
                method.per_question.append(row)
                if method is methods[0]:
                    missed = [r for r in question["relevant"] if r not in ranked[:TOP_K]]
                    if missed:
                        misses.append(
                            {
                                "user_id": user_id,
                                "kind": question.get("kind"),
                                "query": question["query"],
                                "missed": [(r, content[r]) for r in missed],
                                "found": [
                                    (r, ranked.index(r) + 1)
                                    for r in question["relevant"]
                                    if r in ranked[:TOP_K]
                                ],
                                "top3": [(r, content[r]) for r in ranked[:3]],
                            }
                        )
    return methods, misses


# --- Output -----------------------------------------------------------------------------


def print_table(methods: list[Method], groups: list[str], group_by: str) -> None:
    width = max(len(m.name) for m in methods)
    header = f"| {'method':<{width}} | recall@5 | recall@10 |   MRR |"
    rule = f"|{'-' * (width + 2)}|---------:|----------:|------:|"
    n_questions = len(methods[0].per_question)
    print(f"\nOverall ({n_questions} questions)\n")
    print(header)
    print(rule)
    for m in methods:
        avg = averages(m.per_question)
        print(
            f"| {m.name:<{width}} | {avg['recall@5']:>8.3f} | {avg['recall@10']:>9.3f} "
            f"| {avg['mrr']:>5.3f} |"
        )
    ours = methods[0]
    print(f"\n{ours.name} per {group_by}\n")
    gwidth = max(len(group_by), *(len(g) for g in groups))
    print(f"| {group_by:<{gwidth}} | questions | recall@5 | recall@10 |   MRR |")
    print(f"|{'-' * (gwidth + 2)}|----------:|---------:|----------:|------:|")
    for g in groups:
        rows = [r for r in ours.per_question if r[group_by] == g]
        avg = averages(rows)
        print(
            f"| {g:<{gwidth}} | {len(rows):>9} | {avg['recall@5']:>8.3f} "
            f"| {avg['recall@10']:>9.3f} | {avg['mrr']:>5.3f} |"
        )
    print(f"\nrecall@10 per {group_by}, every method\n")
    print(f"| {'method':<{width}} | " + " | ".join(f"{g:>9}" for g in groups) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * 10 + ":" for _ in groups) + "|")
    for m in methods:
        cells = []
        for g in groups:
            avg = averages([r for r in m.per_question if r[group_by] == g])
            cells.append(f"{avg['recall@10']:>9.3f}")
        print(f"| {m.name:<{width}} | " + " | ".join(cells) + " |")


def print_misses(misses: list[dict]) -> None:
    print(f"\nQuestions where ours misses relevant memories in the top {TOP_K}: {len(misses)}")
    for i, miss in enumerate(misses, 1):
        found = ", ".join(f"{r}@{rank}" for r, rank in miss["found"]) or "none"
        kind = f" ({miss['kind']})" if miss.get("kind") else ""
        print(f"\n{i}. [{miss['user_id']}]{kind} {miss['query']}   (found: {found})")
        for r, text in miss["missed"]:
            print(f"   missed  {r:>5}: {text}")
        for n, (r, text) in enumerate(miss["top3"], 1):
            print(f"   top{n}    {r:>5}: {text}")


def run_set(name: str, dataset: dict, args: argparse.Namespace) -> dict:
    """Load one set, ask its questions, print its tables; returns its JSON summary."""
    started = time.monotonic()
    id_maps = load_dataset(dataset)
    if args.embeddings:
        from django.core.management import call_command

        # Creates queue their vectors for a background thread; the backfill makes them
        # all now, in batches, before the first question (the thread then finds them done).
        call_command("backfill_embeddings")
    loaded = time.monotonic()
    methods, misses = evaluate(dataset, id_maps)
    users = [u["user_id"] for u in dataset["users"]]
    n_memories = sum(len(u["memories"]) for u in dataset["users"])
    n_questions = sum(len(u["questions"]) for u in dataset["users"])
    kinds = list(
        dict.fromkeys(q.get("kind", "-") for u in dataset["users"] for q in u["questions"])
    )
    group_by, groups = ("kind", kinds) if kinds != ["-"] else ("user_id", users)
    print(f"\n## {name} set")
    print(
        f"\n{n_memories} memories, {n_questions} questions, {len(users)} users; "
        f"load {loaded - started:.1f}s, eval {time.monotonic() - loaded:.1f}s"
    )
    print_table(methods, groups, group_by)
    if args.show_misses:
        print_misses(misses)
    return {
        "memories": n_memories,
        "questions": n_questions,
        "methods": {
            m.name: {
                "overall": averages(m.per_question),
                "per_group": {
                    g: averages([r for r in m.per_question if r[group_by] == g]) for g in groups
                },
                "questions": m.per_question,
            }
            for m in methods
        },
        "misses": misses,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    sets = []
    if args.which in ("facts", "both"):
        sets.append(("facts", json.loads(args.dataset.read_text(encoding="utf-8"))))
    if args.which in ("conversations", "both"):
        conversations = json.loads(args.conversations.read_text(encoding="utf-8"))
        sets.append(("conversations", conversations_as_dataset(conversations)))
    setup_django(args)
    out = {name: run_set(name, dataset, args) for name, dataset in sets}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
