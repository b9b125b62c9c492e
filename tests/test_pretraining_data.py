"""ALBERT pretraining data: SOP instances, whole-word n-gram masking, streams."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albert_cli.data.pretraining import (
    FEATURE_NAMES,
    PretrainingStream,
    Vocab,
    batch_examples,
    create_instances_from_document,
    create_masked_lm_predictions,
    is_start_piece,
    iter_documents,
    iter_examples,
    truncate_seq_pair,
    vocab_from_sentencepiece,
)

ROOT = Path(__file__).resolve().parents[1]
CLS, SEP, MASK = 2, 3, 4


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
SYLLABLES = ["ka", "lo", "mi", "ter", "san", "do", "ri", "vel", "pon", "gra", "tu", "shi",
             "ben", "mor", "al", "ex", "qua", "nis", "op", "fe"]


def make_lexicon(rng, n=300):
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES, size=rng.integers(1, 5))))
    return sorted(words)


def make_sentence(rng, lexicon, weights):
    k = int(rng.integers(5, 16))
    words = list(rng.choice(lexicon, size=k, p=weights))
    if rng.random() < 0.3:
        words.insert(int(rng.integers(1, k)), str(int(rng.integers(0, 100))))
    text = " ".join(words)
    if rng.random() < 0.5:
        text = text.replace(" ", ", ", 1)
    return text[0].upper() + text[1:] + "."


@pytest.fixture(scope="module")
def corpus_text():
    """~700 documents of English-like sentences, blank-line separated."""
    rng = np.random.default_rng(2024)
    lexicon = make_lexicon(rng)
    weights = 1.0 / np.arange(1, len(lexicon) + 1)
    weights /= weights.sum()
    lines = []
    for _ in range(700):
        for _ in range(int(rng.integers(1, 12))):
            lines.append(make_sentence(rng, lexicon, weights))
        lines.append("")
    return lines


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory, corpus_text):
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("spm")
    train = d / "train.txt"
    train.write_text("\n".join(ln for ln in corpus_text[:2000] if ln) + "\n", encoding="utf-8")
    prefix = d / "tiny"
    spm.SentencePieceTrainer.train(
        input=str(train), model_prefix=str(prefix), vocab_size=320, model_type="unigram",
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    proc = spm.SentencePieceProcessor()
    proc.Load(str(prefix) + ".model")
    return str(prefix) + ".model", proc


@pytest.fixture(scope="module")
def sp_vocab(sp_model):
    return vocab_from_sentencepiece(sp_model[0])


@pytest.fixture(scope="module")
def sp_documents(sp_model, corpus_text):
    proc = sp_model[1]
    return list(iter_documents(corpus_text, lambda s: proc.encode(s.lower())))


def synthetic_vocab(size=3000) -> Vocab:
    """Ids >= 7: every 4th is a continuation piece, others start words.
    Id 5 is a `<ctl>` control piece, id 6 a `[FOO]` piece: both special."""
    pieces = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]", "<ctl>", "[FOO]"]
    for i in range(7, size):
        letters = "".join(chr(97 + (i // 26**k) % 26) for k in range(3))
        pieces.append(letters if i % 4 == 0 else f"\u2581w{i}")
    return Vocab(pieces)


def increasing_documents(n_docs=400, seed=5, max_id=3000):
    """Documents whose token ids strictly increase through the document, so the
    original order of any two pieces of it is recoverable."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        n_sent = int(rng.integers(1, 9))
        lengths = rng.integers(1, 25, size=n_sent)
        ids = np.sort(rng.choice(np.arange(7, max_id), size=int(lengths.sum()), replace=False))
        cuts = np.cumsum(lengths)[:-1]
        docs.append([s.tolist() for s in np.split(ids, cuts)])
    return docs


def originals(ex) -> np.ndarray:
    """Undo the masking of one example dict (restore the original ids)."""
    tokens = ex["token_ids"].copy()
    k = int(ex["masked_lm_weights"].sum())
    tokens[ex["masked_lm_positions"][:k]] = ex["masked_lm_ids"][:k]
    return tokens


def word_unit_ids(tokens, vocab):
    """Word index of every non-special position (-1 for special), from pieces."""
    out, w, prev_special = np.full(len(tokens), -1), -1, True
    for i, t in enumerate(tokens):
        if vocab.is_special[t]:
            prev_special = True
            continue
        if prev_special or vocab.is_word_start[t] or w < 0:
            w += 1
        out[i] = w
        prev_special = False
    return out


@pytest.fixture(scope="module")
def sp_examples(sp_documents, sp_vocab):
    exs = []
    for epoch in range(3):
        exs.extend(iter_examples(sp_documents, sp_vocab, 64, 20, seed=3, epoch=epoch))
    return exs


# ---------------------------------------------------------------------------
# Vocab
# ---------------------------------------------------------------------------
def test_vocab_from_sentencepiece(sp_model, sp_vocab):
    _, proc = sp_model
    v = sp_vocab
    assert (v.pad_id, v.unk_id, v.cls_id, v.sep_id, v.mask_id) == (0, 1, 2, 3, 4)
    assert [v.pieces[i] for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert {0, 1, 2, 3, 4} <= v.special_ids
    assert not set(v.replacement_ids.tolist()) & v.special_ids
    assert len(v.replacement_ids) == len(v) - len(v.special_ids)
    assert len(v) == proc.get_piece_size()
    for i, p in enumerate(v.pieces):
        if p.startswith("\u2581"):
            assert v.is_word_start[i]
    assert not v.is_word_start.all()  # some continuation pieces exist


def test_is_start_piece_rule():
    assert is_start_piece("\u2581the") and is_start_piece("\u2581")
    assert not is_start_piece("ing") and not is_start_piece("s")
    assert is_start_piece(",") and is_start_piece(".")
    assert is_start_piece("12") and is_start_piece("é")  # digits / foreign: whole pieces
    assert is_start_piece("<unk>")


def test_vocab_special_pieces():
    v = synthetic_vocab(100)
    assert v.special_ids == frozenset({0, 1, 2, 3, 4, 5, 6})
    assert v.replacement_ids.min() == 7
    assert not v.is_word_start[8] and v.is_word_start[9]


# ---------------------------------------------------------------------------
# Documents and instances
# ---------------------------------------------------------------------------
def test_iter_documents_streams():
    consumed = []

    def lines():
        for ln in ["a b", "c", "", "", "  ", "d", "skip", "e f", "", "g"]:
            consumed.append(ln)
            yield ln + "\n"

    enc = {"a b": [10, 11], "c": [12], "d": [13], "skip": [], "e f": [14, 15], "g": [16]}
    it = iter_documents(lines(), lambda s: enc[s])
    assert next(it) == [[10, 11], [12]]
    assert len(consumed) == 3  # lazily: stopped at the first blank line
    assert list(it) == [[[13], [14, 15]], [[16]]]


def test_instances_structure_and_sop_order():
    docs = increasing_documents(1500)
    rng = np.random.default_rng(0)
    labels, n = [], 0
    for doc in docs:
        for inst in create_instances_from_document(doc, 48, rng):
            t, s = inst.token_ids, inst.segment_ids
            assert len(t) <= 48 and len(t) == len(s)
            assert t[0] == CLS and t[-1] == SEP and (t == SEP).sum() == 2
            sep1 = int(np.flatnonzero(t == SEP)[0])
            a, b = t[1:sep1], t[sep1 + 1 : -1]
            assert len(a) >= 1 and len(b) >= 1
            assert (s[: sep1 + 1] == 0).all() and (s[sep1 + 1 :] == 1).all()
            assert (np.diff(a) > 0).all() and (np.diff(b) > 0).all()  # contiguous, in order
            if inst.sentence_order_label == 0:
                assert a.max() < b.min()
            else:  # swapped: segment A's text came after B's in the document
                assert a.min() > b.max()
            labels.append(inst.sentence_order_label)
            n += 1
    assert n > 2000
    assert 0.46 < np.mean(labels) < 0.54


def test_instances_edge_cases():
    rng = np.random.default_rng(1)
    assert create_instances_from_document([[7]], 16, rng) == []  # cannot split one token
    (inst,) = create_instances_from_document([[7, 8, 9, 10]], 16, rng)  # one sentence: split inside
    assert sorted(inst.token_ids[inst.token_ids > 4].tolist()) == [7, 8, 9, 10]
    long_doc = [list(range(100 + 50 * i, 150 + 50 * i)) for i in range(10)]
    for inst in create_instances_from_document(long_doc, 32, rng, short_seq_prob=1.0):
        assert len(inst.token_ids) <= 32
    with pytest.raises(ValueError):
        create_instances_from_document(long_doc, 4, rng)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(2, 50), st.integers(0, 2**32 - 1))
def test_truncate_seq_pair(la, lb, max_num, seed):
    a0, b0 = list(range(la)), list(range(100, 100 + lb))
    a, b = list(a0), list(b0)
    truncate_seq_pair(a, b, max_num, np.random.default_rng(seed))
    assert len(a) + len(b) == min(la + lb, max_num)

    def contiguous(x, x0):
        return not x or x0[x0.index(x[0]) : x0.index(x[0]) + len(x)] == x

    assert contiguous(a, a0) and contiguous(b, b0)
    if la + lb > max_num:  # only ever trimmed the longer one
        if len(a) < la and len(b) < lb:
            assert abs(len(a) - len(b)) <= 1


# ---------------------------------------------------------------------------
# Masking statistics (thousands of instances)
# ---------------------------------------------------------------------------
def test_masked_fraction_and_budget(sp_examples, sp_vocab):
    assert len(sp_examples) > 2000
    total_masked = total_nonspecial = total_budget = 0
    for ex in sp_examples:
        n_real = int(ex["padding_mask"].sum())
        assert 5 <= n_real <= 64
        k = int(ex["masked_lm_weights"].sum())
        budget = min(20, max(1, round(n_real * 0.15)))
        assert 1 <= k <= budget
        orig = originals(ex)
        total_masked += k
        total_nonspecial += int((~sp_vocab.is_special[orig[:n_real]]).sum())
        total_budget += budget
    frac = total_masked / total_nonspecial
    assert 0.14 < frac < 0.17, frac
    assert total_masked / total_budget > 0.97


def test_max_predictions_cap(sp_documents, sp_vocab):
    counts, budgets = [], []
    for ex in iter_examples(sp_documents[:200], sp_vocab, 128, 6, seed=9):
        k = int(ex["masked_lm_weights"].sum())
        budget = min(6, max(1, round(int(ex["padding_mask"].sum()) * 0.15)))
        assert k <= budget and ex["masked_lm_positions"].shape == (6,)
        assert (ex["masked_lm_weights"][:k] == 1).all() and (ex["masked_lm_weights"][k:] == 0).all()
        assert (ex["masked_lm_positions"][k:] == 0).all() and (ex["masked_lm_ids"][k:] == 0).all()
        counts.append(k)
        budgets.append(budget)
    assert sum(counts) / sum(budgets) > 0.95
    assert Counter(budgets)[6] > 0.7 * len(budgets)  # the cap binds for full-length sequences


def test_80_10_10_and_no_special_positions(sp_examples, sp_vocab):
    kinds = Counter()
    for ex in sp_examples:
        n_real = int(ex["padding_mask"].sum())
        k = int(ex["masked_lm_weights"].sum())
        pos, labels = ex["masked_lm_positions"][:k], ex["masked_lm_ids"][:k]
        assert (np.diff(pos) > 0).all() and pos.max() < n_real and pos.min() > 0
        assert not sp_vocab.is_special[labels].any()  # never CLS/SEP/pad/unk...
        got = ex["token_ids"][pos]
        for g, lab in zip(got.tolist(), labels.tolist()):
            if g == MASK:
                kinds["mask"] += 1
            elif g == lab:
                kinds["keep"] += 1
            else:
                assert not sp_vocab.is_special[g], g  # random replacements never special
                kinds["random"] += 1
        # Unmasked real positions are untouched; padding is pad.
        assert (ex["token_ids"][n_real:] == 0).all()
    total = sum(kinds.values())
    assert total > 20000
    assert abs(kinds["mask"] / total - 0.8) < 0.015
    assert abs(kinds["keep"] / total - 0.1) < 0.012
    assert abs(kinds["random"] / total - 0.1) < 0.012


def test_random_replacements_skip_control_pieces():
    v = synthetic_vocab(60)  # small vocab: special ids would be drawn often if allowed
    docs = [[list(range(7, 60))[i : i + 10] for i in range(0, 50, 10)] for _ in range(300)]
    seen = Counter()
    for ex in iter_examples(docs, v, 40, 8, seed=1):
        k = int(ex["masked_lm_weights"].sum())
        pos, labels = ex["masked_lm_positions"][:k], ex["masked_lm_ids"][:k]
        for g, lab in zip(ex["token_ids"][pos].tolist(), labels.tolist()):
            if g != MASK and g != lab:
                seen[g] += 1
    assert sum(seen.values()) > 200
    assert not set(seen) & set(v.special_ids)
    assert set(seen) <= set(range(7, 60))


def test_whole_word_masking(sp_examples, sp_vocab):
    multi_piece_words = 0
    for ex in sp_examples[:1500]:
        orig = originals(ex)
        n_real = int(ex["padding_mask"].sum())
        words = word_unit_ids(orig[:n_real], sp_vocab)
        k = int(ex["masked_lm_weights"].sum())
        masked = np.zeros(n_real, bool)
        masked[ex["masked_lm_positions"][:k]] = True
        for w in np.unique(words[masked]):
            members = words == w
            assert masked[members].all(), "a word was only partly masked"
            multi_piece_words += members.sum() > 1
    assert multi_piece_words > 100


def _span_shares(spans_iter):
    lengths = Counter(len(span) for spans in spans_iter for span in spans)
    total = sum(lengths.values())
    return total, [lengths[n] / total for n in (1, 2, 3)]


def test_ngram_length_shares(sp_documents, sp_vocab):
    """Masked whole-word span lengths follow p(n) ∝ 1/n = 6/11, 3/11, 2/11.

    As in the original algorithm, a drawn n-gram falls back to a shorter one
    when it would exceed the prediction budget, is cut at the end of the
    sequence, and is skipped when it overlaps an earlier span -- all of which
    move some mass from 3-grams to 1-grams, the more so the more pieces a word
    has.  With one-piece words and a long sequence these effects are small."""
    target = (6 / 11, 3 / 11, 2 / 11)

    # (a) Real SentencePiece text (multi-piece words), ALBERT-like settings.
    rng, inst_rng = np.random.default_rng(123), np.random.default_rng(0)

    def sp_spans():
        for doc in sp_documents:
            for inst in create_instances_from_document(doc, 128, inst_rng):
                pred = create_masked_lm_predictions(inst.token_ids, sp_vocab, rng,
                                                    max_predictions_per_seq=20)
                # spans are exactly the masked positions
                flat = sorted(p for span in pred.spans for unit in span for p in unit)
                assert flat == pred.masked_lm_positions.tolist()
                yield pred.spans

    total, shares = _span_shares(sp_spans())
    assert total > 5000
    assert shares[0] > shares[1] > shares[2]
    for got, want in zip(shares, target):
        assert abs(got - want) < 0.09, shares

    # (b) One-piece words, 512 tokens, budget 77: close to the exact shares.
    v = synthetic_vocab(3000)
    starts = np.array([i for i in range(7, 3000) if i % 4], dtype=np.int32)
    rng = np.random.default_rng(1)

    def one_piece_spans():
        for _ in range(150):
            toks = np.concatenate([[CLS], rng.choice(starts, 500), [SEP], rng.choice(starts, 9), [SEP]])
            yield create_masked_lm_predictions(toks.astype(np.int32), v, rng,
                                               max_predictions_per_seq=77).spans

    total, shares = _span_shares(one_piece_spans())
    assert total > 5000
    for got, want in zip(shares, target):
        assert abs(got - want) < 0.03, shares


def test_ngram_draws_follow_one_over_n_exactly():
    """With a budget that never binds and no overlaps possible at the start,
    the first span's length is distributed exactly as p(n) ∝ 1/n."""
    v = synthetic_vocab(400)
    tokens = np.array([CLS] + [9 + 4 * i for i in range(90)] + [SEP], dtype=np.int32)  # all word starts
    rng = np.random.default_rng(7)
    first = Counter()
    for _ in range(3000):
        pred = create_masked_lm_predictions(tokens, v, rng, max_predictions_per_seq=50)
        span = pred.spans[0]
        if span[0][0] <= 88:  # not cut by the end of the sequence
            first[len(span)] += 1
    total = sum(first.values())
    for n, want in zip((1, 2, 3), (6 / 11, 3 / 11, 2 / 11)):
        assert abs(first[n] / total - want) < 0.03


# ---------------------------------------------------------------------------
# Streams: determinism, dynamic masking, sharding, batching, tf.data
# ---------------------------------------------------------------------------
def _same(xs, ys):
    return len(xs) == len(ys) and all(
        all(np.array_equal(x[k], y[k]) for k in FEATURE_NAMES) for x, y in zip(xs, ys)
    )


def test_features_shapes_and_segments(sp_examples, sp_vocab):
    for ex in sp_examples[:500]:
        assert set(ex) == set(FEATURE_NAMES)
        assert ex["token_ids"].shape == (64,) and ex["token_ids"].dtype == np.int32
        assert ex["masked_lm_weights"].dtype == np.float32
        assert ex["sentence_order_label"].shape == () and int(ex["sentence_order_label"]) in (0, 1)
        n_real = int(ex["padding_mask"].sum())
        assert (ex["padding_mask"][:n_real] == 1).all() and (ex["padding_mask"][n_real:] == 0).all()
        orig = originals(ex)
        seps = np.flatnonzero(orig[:n_real] == SEP)
        assert orig[0] == CLS and len(seps) == 2 and seps[1] == n_real - 1
        seg = ex["segment_ids"]
        assert (seg[: seps[0] + 1] == 0).all() and (seg[seps[0] + 1 : n_real] == 1).all()
        assert (seg[n_real:] == 0).all()
    labels = [int(ex["sentence_order_label"]) for ex in sp_examples]
    assert 0.45 < np.mean(labels) < 0.55


def test_sop_order_through_stream():
    v = synthetic_vocab()
    for ex in iter_examples(increasing_documents(150), v, 40, 6, seed=4, epoch=2):
        orig = originals(ex)
        n_real = int(ex["padding_mask"].sum())
        sep1 = int(np.flatnonzero(orig == SEP)[0])
        a, b = orig[1:sep1], orig[sep1 + 1 : n_real - 1]
        if int(ex["sentence_order_label"]) == 1:
            assert a.min() > b.max()
        else:
            assert a.max() < b.min()


def test_determinism_and_fresh_masks_per_epoch(sp_documents, sp_vocab):
    docs = sp_documents[:150]
    e0 = list(iter_examples(docs, sp_vocab, 64, 10, seed=11, epoch=0))
    e0_again = list(iter_examples(lambda: iter(docs), sp_vocab, 64, 10, seed=11, epoch=0))
    assert _same(e0, e0_again)
    e1 = list(iter_examples(docs, sp_vocab, 64, 10, seed=11, epoch=1))
    assert len(e1) == len(e0)
    differing = 0
    for x, y in zip(e0, e1):
        # Same underlying instance (dynamic masking only redraws the masks)...
        assert np.array_equal(originals(x), originals(y))
        assert np.array_equal(x["segment_ids"], y["segment_ids"])
        assert x["sentence_order_label"] == y["sentence_order_label"]
        differing += not np.array_equal(x["masked_lm_positions"], y["masked_lm_positions"])
    assert differing > 0.9 * len(e0)
    other_seed = list(iter_examples(docs, sp_vocab, 64, 10, seed=12, epoch=0))
    assert not _same(e0, other_seed)
    # Optionally re-segment every epoch too.
    v0 = list(iter_examples(docs, sp_vocab, 64, 10, seed=11, epoch=0, vary_instances_per_epoch=True))
    v1 = list(iter_examples(docs, sp_vocab, 64, 10, seed=11, epoch=1, vary_instances_per_epoch=True))
    assert not all(np.array_equal(originals(x), originals(y)) for x, y in zip(v0, v1))


def test_sharding_partitions_documents():
    v = synthetic_vocab(3000)
    # Document i only uses ids 7 + 30*i ... 7 + 30*i + 24: the owner of any example is known.
    docs = [[list(range(7 + 30 * i + 5 * j, 12 + 30 * i + 5 * j)) for j in range(5)] for i in range(90)]
    owner = lambda ex: (int(originals(ex)[1]) - 7) // 30  # noqa: E731
    full = list(iter_examples(docs, v, 16, 4, seed=2, epoch=1))
    shards = [list(iter_examples(docs, v, 16, 4, seed=2, epoch=1, shard_index=i, num_shards=3))
              for i in range(3)]
    for i, shard in enumerate(shards):
        assert shard and {owner(ex) % 3 for ex in shard} == {i}
    # Per-document seeding: the shards together are exactly the unsharded stream.
    key = lambda ex: b"".join(ex[k].tobytes() for k in FEATURE_NAMES)  # noqa: E731
    assert sorted(map(key, full)) == sorted(key(ex) for s in shards for ex in s)
    with pytest.raises(ValueError):
        iter_examples(docs, v, 16, 4, shard_index=3, num_shards=3)  # validated eagerly


def test_shuffle_buffer_and_batching(sp_documents, sp_vocab):
    docs = sp_documents[:60]
    plain = list(iter_examples(docs, sp_vocab, 64, 10, seed=2))
    shuf = list(iter_examples(docs, sp_vocab, 64, 10, seed=2, shuffle_buffer_size=16))
    shuf2 = list(iter_examples(docs, sp_vocab, 64, 10, seed=2, shuffle_buffer_size=16))
    key = lambda ex: ex["token_ids"].tobytes()  # noqa: E731
    assert sorted(map(key, plain)) == sorted(map(key, shuf))
    assert [key(e) for e in plain] != [key(e) for e in shuf]
    assert _same(shuf, shuf2)

    batches = list(batch_examples(iter(plain), 8))
    assert [b["token_ids"].shape[0] for b in batches[:-1]] == [8] * (len(batches) - 1)
    assert batches[0]["token_ids"].shape == (8, 64) and batches[0]["sentence_order_label"].shape == (8,)
    assert sum(b["token_ids"].shape[0] for b in batches) == len(plain)
    assert np.array_equal(batches[1]["masked_lm_ids"][3], plain[11]["masked_lm_ids"])
    dropped = list(batch_examples(iter(plain), 8, drop_remainder=True))
    assert len(dropped) == len(plain) // 8

    stream = PretrainingStream(docs, sp_vocab, 64, 10, seed=2)
    assert _same(list(stream.examples(0)), plain)
    first = next(iter(stream.batches(0, 8)))
    assert np.array_equal(first["token_ids"], batches[0]["token_ids"])


IMPORT_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from albert_cli.data import pretraining as P
    v = P.Vocab(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"] + ["\\u2581w%d" % i for i in range(5, 200)])
    docs = [[[5 + (7 * i + j) % 190 for j in range(12)] for i in range(6)] for _ in range(5)]
    batches = list(P.batch_examples(P.iter_examples(docs, v, 32, 5, seed=1), 4))
    assert batches and batches[0]["token_ids"].shape == (4, 32)
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax"))
    print("HEAVY", bad)
    sys.exit(1 if bad else 0)
    """
)


def test_module_import_does_not_import_tensorflow():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tf_dataset_matches_numpy(sp_documents, sp_vocab):
    pytest.importorskip("tensorflow")
    from albert_cli.data.pretraining import make_tf_dataset

    docs = sp_documents[:40]
    kw = dict(seed=5, epoch=3, shuffle_buffer_size=8)
    want = list(iter_examples(docs, sp_vocab, 64, 10, **kw))
    ds = make_tf_dataset(docs, sp_vocab, 64, 10, **kw)
    got = list(ds.as_numpy_iterator())
    assert _same(got, want)
    assert all(got[0][k].dtype == want[0][k].dtype for k in FEATURE_NAMES)

    batched = list(make_tf_dataset(docs, sp_vocab, 64, 10, batch_size=8, **kw).as_numpy_iterator())
    want_b = list(batch_examples(iter(want), 8))
    assert _same(batched, want_b)
    stream = PretrainingStream(docs, sp_vocab, 64, 10, seed=5, shuffle_buffer_size=8)
    assert _same(list(stream.tf_dataset(3).as_numpy_iterator()), want)
