"""Build eval/conversations.json from the scripts in eval/conversations_source.py.

    .venv/bin/python eval/make_conversations.py

Deterministic: the small talk between scripted turns is drawn with a fixed seed per
conversation, so the file only changes when a script or SMALL_TALK changes.
"""

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conversations_source import CHATTER, CONVERSATIONS, SMALL_TALK  # noqa: E402

OUT = HERE / "conversations.json"
KINDS = ("single", "when", "multihop", "inference")
_IMAGE = re.compile(r"\s*\[image:\s*([^\]]+)\]")
_TAG = re.compile(r"\s+#(\w+)\s*$")
# Each "~N" in a script stands for N + N//2 turns of small talk and N//2 + 1 of chatter.


def build(conversation: dict) -> dict:
    """One conversation: sessions of turns with ids "D<session>:<turn>", and questions
    whose evidence tags are resolved to turn ids."""
    speakers = dict(zip("AB", conversation["speakers"], strict=True))
    pools = {
        name: [line.strip() for line in text.strip().splitlines() if line.strip()]
        for name, text in (("talk", SMALL_TALK), ("chatter", CHATTER))
    }
    rng = random.Random(conversation["user_id"])
    bags: dict[str, list[str]] = {"talk": [], "chatter": []}

    def draw(pool: str) -> str:
        if not bags[pool]:
            bags[pool] = pools[pool][:]
            rng.shuffle(bags[pool])
        return bags[pool].pop()

    sessions: list[dict] = []
    tags: dict[str, str] = {}
    last = "B"

    def add(speaker: str, text: str, image: str | None = None) -> str:
        session = sessions[-1]
        turn_id = f"D{len(sessions)}:{len(session['turns']) + 1}"
        turn = {"id": turn_id, "speaker": speakers[speaker], "text": text}
        if image:
            turn["image"] = image
        session["turns"].append(turn)
        return turn_id

    for raw in conversation["script"].strip().splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("== "):
            sessions.append({"date": line[3:].strip(), "turns": []})
            last = "B"
        elif line.startswith("~"):
            n = int(line[1:])
            kinds = ["talk"] * (n + n // 2) + ["chatter"] * (n // 2 + 1)
            rng.shuffle(kinds)
            for pool in kinds:
                last = "A" if last == "B" else "B"
                add(last, draw(pool))
        else:
            speaker, _, said = line.partition(": ")
            if speaker not in speakers:
                raise SystemExit(f"{conversation['user_id']}: bad line {line!r}")
            tag = _TAG.search(said)
            if tag:
                said = said[: tag.start()]
            image = _IMAGE.search(said)
            caption = image.group(1).strip() if image else None
            if image:
                said = (said[: image.start()] + said[image.end() :]).strip()
            turn_id = add(speaker, said, caption)
            last = speaker
            if tag:
                if tag.group(1) in tags:
                    raise SystemExit(f"{conversation['user_id']}: tag #{tag.group(1)} twice")
                tags[tag.group(1)] = turn_id
    questions = []
    for kind, query, evidence in conversation["questions"]:
        if kind not in KINDS:
            raise SystemExit(f"{conversation['user_id']}: unknown kind {kind!r}")
        missing = [t for t in evidence if t not in tags]
        if missing:
            raise SystemExit(f"{conversation['user_id']}: {query!r} cites unknown {missing}")
        questions.append({"kind": kind, "query": query, "evidence": [tags[t] for t in evidence]})
    return {
        "user_id": conversation["user_id"],
        "speakers": list(conversation["speakers"]),
        "sessions": sessions,
        "questions": questions,
    }


def main() -> int:
    data = {"conversations": [build(c) for c in CONVERSATIONS]}
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for c in data["conversations"]:
        turns = sum(len(s["turns"]) for s in c["sessions"])
        print(
            f"{c['user_id']}: {len(c['sessions'])} sessions, {turns} turns, "
            f"{len(c['questions'])} questions"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
