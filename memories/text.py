"""Text normalisation for the blind term index: fold, tokenise, drop stop words, stem.

INDEX_VERSION must change whenever the output of `index_terms` for the same text changes;
`manage.py reindex_memories` then rebuilds rows written by an older version.
"""

import functools
import re
import threading
import unicodedata
from collections import Counter
from typing import Any

import snowballstemmer

from memories.lexicon import RELATED_GROUPS

# 2: key words and content words in separate hash domains, the type no longer indexed,
# length-prefixed hash input, at most MAX_TERMS_PER_MEMORY distinct words.
INDEX_VERSION = 2
# The most distinct words indexed per memory (the most frequent first). The content and
# value limits already bound it; this makes the bound explicit and small enough that a
# memory's index rows are one modest insert on every database.
MAX_TERMS_PER_MEMORY = 2000
# The most distinct words of a query that are searched (the first ones): a message is a
# few sentences, and a pasted document must not turn into a ranking query of thousands
# of terms.
MAX_QUERY_TERMS = 128

# The usual English stop-word list (as in NLTK), plus contraction remnants.
STOP_WORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren arent as at be because
    been before being below between both but by can couldn couldnt d did didn didnt do does
    doesn doesnt doing don dont down during each few for from further had hadn hadnt has
    hasn hasnt have haven havent having he her here hers herself him himself his how i if in
    into is isn isnt it its itself just ll m ma me mightn mightnt more most mustn mustnt my
    myself needn neednt no nor not now o of off on once only or other our ours ourselves out
    over own re s same shan shant she shes should shouldn shouldnt shouldve so some such t
    than that thatll the their theirs them themselves then there these they this those
    through to too under until up ve very was wasn wasnt we were weren werent what when where
    which while who whom why will with won wont wouldn wouldnt y you youd youll your youre
    yours yourself yourselves youve im ive id
    """.split()
)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_APOSTROPHES = re.compile(r"['\u2019\u02bc]")
_POSSESSIVE = re.compile(r"['\u2019\u02bc]s\b")

# Words that shape a question but say nothing about its subject ("Would she likely enjoy
# ...?", "What kind of ...?"). Left out of queries only: memories keep them.
QUESTION_WORDS = frozenset("would could might likely probably possibly kind sort".split())

# Weight of a related word relative to the word the query actually used.
RELATED_WEIGHT = 0.35
# Idioms whose words say nothing on their own ("living" is not about homes here).
IDIOMS = {"for a living": "job", "other half": "partner", "significant other": "partner"}


_per_thread = threading.local()


def _stemmer() -> Any:
    # PyStemmer's stemmer keeps state while it stems and must not be shared between
    # threads (gunicorn runs several per process): one per thread.
    stemmer = getattr(_per_thread, "stemmer", None)
    if stemmer is None:
        stemmer = _per_thread.stemmer = snowballstemmer.stemmer("english")
    return stemmer


def fold(text: str) -> str:
    """Lower-case and strip accents: 'Café' and 'cafe' index the same."""
    if text.isascii():
        return text.lower()  # nothing to decompose: the same result, without a per-char loop
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    """Folded words without stop words (not stemmed)."""
    text = _APOSTROPHES.sub("", _POSSESSIVE.sub("", fold(text)))
    return [w for w in _WORD.findall(text) if w not in STOP_WORDS]


def stems(text: str) -> list[str]:
    words = tokens(text)
    return _stemmer().stemWords(words) if words else []


def index_terms(text: str) -> Counter[str]:
    """Stem -> term frequency for a memory's searchable text, at most
    MAX_TERMS_PER_MEMORY stems (the most frequent; ties keep the earliest)."""
    counts = Counter(stems(text))
    if len(counts) > MAX_TERMS_PER_MEMORY:
        counts = Counter(dict(counts.most_common(MAX_TERMS_PER_MEMORY)))
    return counts


@functools.lru_cache(maxsize=1)
def _related() -> dict[str, frozenset[str]]:
    stemmer = _stemmer()
    related: dict[str, set[str]] = {}
    for group in RELATED_GROUPS:
        group_stems = {s for s in stemmer.stemWords([fold(w) for w in group]) if s}
        for stem in group_stems:
            related.setdefault(stem, set()).update(group_stems - {stem})
    return {stem: frozenset(others) for stem, others in related.items()}


def query_terms(text: str) -> dict[str, float]:
    """Stem -> weight for a query: its own stems at 1, related stems at RELATED_WEIGHT."""
    folded = fold(text)
    for idiom, meaning in IDIOMS.items():
        folded = folded.replace(idiom, meaning)
    words = [w for w in tokens(folded) if w not in QUESTION_WORDS]
    own_stems = _stemmer().stemWords(words) if words else []
    own = set(list(dict.fromkeys(own_stems))[:MAX_QUERY_TERMS])
    weights = dict.fromkeys(own, 1.0)
    related = _related()
    for stem in own:
        for other in related.get(stem, ()):
            if other not in own:
                weights[other] = RELATED_WEIGHT
    return weights
