"""Which language detector tells a thread's language best? (issue 4/5)

    python benchmarks/language_detect.py [--english 550] [--threshold 0.8]

Compares the detectors that are installed (py3langid is Tiller's dependency; lingua and
langdetect are measured when ``pip install lingua-language-detector langdetect`` put them beside
it) on what a reply's language is read from:

- the hand-written thread messages of tests/data/thread_languages.jsonl (15 languages, from three
  words to three sentences): right, and right *and* confident enough to act on;
- real English mail: the own text of Enron emails (every 7th file of the shared maildir, at least
  three words) plus the set's English reference translations: how many are called another
  language, and how many of those confidently (a confident mistake puts a wrong language rule in
  front of the large model, which is worse than no rule);
- the time to load and the time per text, on this CPU, in the same run.

A confidence is each detector's own: lingua's is relative over its 75 languages, py3langid's and
langdetect's are normalised probabilities, so one threshold does not mean the same for all; the
table gives the share at the threshold and the best achievable by any threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ENRON = Path(os.environ.get("TILLER_ENRON_DATA", REPO.parent / "shared" / "data" / "enron"))
THREADS = REPO / "tests" / "data" / "thread_languages.jsonl"


def _same(code: str) -> str:
    return {"nb": "no", "nn": "no"}.get(code, code)


def detectors() -> dict:
    """name -> (load seconds, text -> (code, confidence)); only the installed ones."""
    found = {}
    start = time.perf_counter()
    from app.language import _identifier, prose

    ident = _identifier()
    found["py3langid"] = (time.perf_counter() - start, lambda t: _pair(ident.classify(prose(t))))
    try:
        from lingua import LanguageDetectorBuilder

        for label, builder in (
            ("lingua", LanguageDetectorBuilder.from_all_languages()),
            ("lingua low-accuracy", LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode()),
        ):
            start = time.perf_counter()
            det = builder.with_preloaded_language_models().build()
            found[label] = (time.perf_counter() - start, _lingua(det))
    except ImportError:
        print("lingua is not installed: not measured", file=sys.stderr)
    try:
        import langdetect

        langdetect.DetectorFactory.seed = 0
        found["langdetect"] = (0.0, _langdetect(langdetect))
    except ImportError:
        print("langdetect is not installed: not measured", file=sys.stderr)
    return found


def _pair(result) -> tuple[str, float]:
    return _same(result[0]), float(result[1])


def _lingua(det):
    def classify(text):
        values = det.compute_language_confidence_values(text)
        return (_same(values[0].language.iso_code_639_1.name.lower()), values[0].value) if values else ("??", 0.0)

    return classify


def _langdetect(module):
    def classify(text):
        try:
            best = module.detect_langs(text)[0]
        except module.LangDetectException:
            return "??", 0.0
        return _same(best.lang.split("-")[0]), best.prob

    return classify


def english_texts(limit: int) -> list[str]:
    from app.mail.decode import parse_message
    from app.mail.split import split_message

    texts = []
    for path in sorted((ENRON / "maildir").glob("*/*/*"))[::7]:
        message = parse_message(path.read_bytes())
        own = split_message(message.body_text, message.subject).own_text.strip()
        if len(own.split()) >= 3:
            texts.append(own[:2000])
        if len(texts) >= limit:
            break
    return texts


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "")
    except OSError:
        model = platform.processor()
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--english", type=int, default=550, help="real English emails to read (default 550)")
    parser.add_argument("--threshold", type=float, default=0.8, help="the confidence acted on (Tiller: 0.8)")
    args = parser.parse_args()
    threads = [json.loads(line) for line in THREADS.open()]
    english = english_texts(args.english) + [t["english"] for t in threads]
    print(f"CPU: {cpu()}")
    print(f"{len(threads)} non-English thread messages, {len(english)} English texts; threshold {args.threshold}\n")
    print("| detector | load s | ms/text | right | right & confident | English called other | ... confidently |")
    print("|---|---|---|---|---|---|---|")
    for name, (load_s, classify) in detectors().items():
        start = time.perf_counter()
        classify("warm up")  # langdetect loads its profiles on the first text: counted as loading
        load_s += time.perf_counter() - start
        start = time.perf_counter()
        told = [classify(t["text"]) for t in threads]
        heard = [classify(t) for t in english]
        per_text = 1000 * (time.perf_counter() - start) / (len(threads) + len(english))
        right = sum(code == t["language"] for (code, _), t in zip(told, threads))
        sure = sum(code == t["language"] and p >= args.threshold for (code, p), t in zip(told, threads))
        other = [(code, p) for code, p in heard if code != "en"]
        confident = sum(p >= args.threshold for _, p in other)
        print(
            f"| {name} | {load_s:.2f} | {per_text:.2f} | {right}/{len(threads)} | {sure}/{len(threads)} "
            f"| {len(other)}/{len(english)} | {confident}/{len(english)} |"
        )


if __name__ == "__main__":
    main()
