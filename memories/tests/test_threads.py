"""Code that request threads share (gunicorn runs several threads per process)."""

import threading
from concurrent.futures import ThreadPoolExecutor

from memories import text

SENTENCES = [
    "Running marathons and cooking vegetarian dinners for her neighbours",
    "He was travelling through the mountains, photographing wolves and eagles",
    "Their daughters are studying engineering and organising hackathons",
]


def test_each_thread_stems_with_its_own_stemmer():
    """PyStemmer's stemmer keeps state while it stems: sharing one between threads can
    mix two words' stems."""
    seen = []
    barrier = threading.Barrier(4)

    def stemmer_of_this_thread():
        barrier.wait()
        seen.append(text._stemmer())
        return text._stemmer() is seen[-1]

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(lambda _: stemmer_of_this_thread(), range(4)))
    assert len({id(stemmer) for stemmer in seen}) == 4


def test_stems_are_the_same_from_many_threads_at_once():
    expected = [text.stems(sentence) for sentence in SENTENCES]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: text.stems(SENTENCES[i % 3]), range(3000)))
    assert all(result == expected[i % 3] for i, result in enumerate(results))
