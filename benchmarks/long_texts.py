"""A long-text BEIR dataset built from SciFact: long documents and long queries.

Writes a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``) made
for measuring memory and chunking on texts far longer than the encoders read:

* every long document is one SciFact document (its *core*, whose id it keeps) with
  unrelated SciFact documents (*filler*, judged for no query of any split) around it,
  the core at a random position, until it has ``--min-words`` words. The cores are
  first the documents judged for the chosen queries, then others, so every judgement
  names a long document and relevance carries over: the long document is relevant
  because the judged text is inside it. Each piece is ``title text``; the long
  document has no title of its own (a title would put the core's words first).
* every query is a judged SciFact test query followed by the text of other SciFact
  documents (found in no long document), to ``--query-words`` words: long, with the
  query first.

Deterministic for a given ``--seed``. Writes outside the repository (default
``/tmp/long_scifact``); ``benchmarks/long_texts.sh`` builds it and measures on it.

    python benchmarks/long_texts.py --data ../shared/data/scifact --out /tmp/long_scifact
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

from hybrid_retriever.evaluation import beir_qrels, beir_queries, read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="SciFact BEIR folder")
    parser.add_argument("--out", type=Path, default=Path("/tmp/long_scifact"))
    parser.add_argument("--docs", type=int, default=300, help="long documents")
    parser.add_argument("--queries", type=int, default=100, help="queries (judged, test split)")
    parser.add_argument("--min-words", type=int, default=2000, help="words per long document")
    parser.add_argument("--query-words", type=int, default=200, help="words per query")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    pieces = {
        str(r["_id"]): " ".join(p for p in (r.get("title", ""), r.get("text", "")) if p)
        for r in read_jsonl(args.data / "corpus.jsonl")
    }
    qrels = beir_qrels(args.data, "test")
    texts = beir_queries(args.data)
    judged_anywhere = {
        doc
        for split in ("test", "train")
        if (args.data / "qrels" / f"{split}.tsv").is_file()
        for judged in beir_qrels(args.data, split).values()
        for doc in judged
    }
    query_ids = sorted(q for q in qrels if q in texts and all(d in pieces for d in qrels[q]))
    query_ids = sorted(rng.sample(query_ids, min(args.queries, len(query_ids))), key=int)
    cores = list(dict.fromkeys(d for q in query_ids for d in qrels[q]))
    if len(cores) > args.docs:
        raise SystemExit(f"--docs {args.docs} is below the {len(cores)} judged documents")
    others = sorted(d for d in pieces if d not in judged_anywhere)
    rng.shuffle(others)
    cores += others[: args.docs - len(cores)]
    chosen = set(cores)
    spare = [d for d in others if d not in chosen]
    # Queries get filler of their own, found in no document: shared filler would make a
    # query match an unrelated long document through the added text alone.
    query_filler, filler = spare[: len(spare) // 10], spare[len(spare) // 10 :]
    queues: dict[int, list[str]] = {}

    def next_filler(pool: list[str]) -> str:
        """A document of ``pool``, none repeated until all are used, then reshuffled."""
        queue = queues.setdefault(id(pool), [])
        if not queue:
            queue.extend(rng.sample(pool, len(pool)))
        return queue.pop()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qrels").mkdir(exist_ok=True)
    words: list[int] = []
    with (args.out / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for core in cores:
            around: list[str] = []
            count = len(pieces[core].split())
            while count < args.min_words:
                around.append(pieces[next_filler(filler)])
                count += len(around[-1].split())
            around.insert(rng.randrange(len(around) + 1), pieces[core])
            words.append(count)
            record = {"_id": core, "title": "", "text": "\n\n".join(around)}
            corpus.write(json.dumps(record, ensure_ascii=False) + "\n")
    query_words: list[int] = []
    with (args.out / "queries.jsonl").open("w", encoding="utf-8") as queries:
        for query_id in query_ids:
            tokens = texts[query_id].split()
            while len(tokens) < args.query_words:
                tokens += pieces[next_filler(query_filler)].split()
            text = " ".join(tokens[: max(args.query_words, len(texts[query_id].split()))])
            query_words.append(len(text.split()))
            queries.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    with (args.out / "qrels" / "test.tsv").open("w", encoding="utf-8") as tsv:
        tsv.write("query-id\tcorpus-id\tscore\n")
        for query_id in query_ids:
            for doc, grade in qrels[query_id].items():
                tsv.write(f"{query_id}\t{doc}\t{grade}\n")
    print(
        f"wrote {args.out}: {len(cores)} documents of {min(words)}-{max(words)} words "
        f"(median {statistics.median(words):.0f}), {len(query_ids)} queries of "
        f"{min(query_words)}-{max(query_words)} words"
    )


if __name__ == "__main__":
    main()
