"""`oodmix-predict ckpt=<checkpoint> input=<points> output=<predictions.csv>`.

Scores every point of a CSV or .npz file with a trained detector (TrainedDetector: the same
code path as the Python API), streaming the input in chunks and writing the output through a
temporary file renamed at the end, so that a refusal or an error half-way leaves no output.

    score       the run's detection score (higher means more in-distribution)
    is_ood      1 when score < threshold, else 0; threshold = delta=... if given, else the
                run's own (its delta for the max softmax probability, else val/delta_best)
    predicted_class   argmax of the logits: the ID class the classifier predicts

Errors are one line on stderr, `oodmix-predict: error: ...`, with exit code 2 and no output
written; OODMIX_DEBUG=1 adds the traceback.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from oodmix.config.errors import debugging
from oodmix.inference.arguments import PROG, Arguments, check_paths, help_text, parse_args
from oodmix.inference.errors import InferenceError

#: The fewest input rows read at a time (more when batch_size is larger).
CHUNK_ROWS = 65536


@dataclass(frozen=True)
class Summary:
    """What one oodmix-predict command did."""

    rows: int
    ood: int
    threshold: float
    threshold_source: str
    output: Path

    def line(self) -> str:
        share = 100.0 * self.ood / self.rows if self.rows else 0.0
        return (
            f"{PROG}: {self.rows} rows, {self.ood} OOD ({share:.1f}%) at threshold "
            f"{self.threshold:.6g} ({self.threshold_source}); wrote {self.output}"
        )


def predict_file(args: Arguments) -> Summary:
    """Score args.input with the checkpoint's detector and write args.output (see module)."""
    from oodmix.files import atomic_open
    from oodmix.inference.detector import TrainedDetector
    from oodmix.inference.tables import PredictionWriter, open_points

    detector = TrainedDetector.from_checkpoint(
        args.ckpt, delta=args.delta, device=args.device, batch_size=args.batch_size
    )
    if detector.threshold is None:
        raise InferenceError(
            f"ckpt={args.ckpt}: no threshold to decide with: {detector.threshold_source}; "
            "give delta=<threshold>"
        )
    points = open_points(args.input, detector.num_features)
    rows = ood = 0
    try:
        with atomic_open(args.output, "w") as handle:
            writer = PredictionWriter(handle, points.columns)
            for chunk in points.chunks(max(CHUNK_ROWS, args.batch_size)):
                result = detector.detect(chunk.x)
                writer.write(chunk, *result)
                rows += len(chunk)
                ood += int(result.is_ood.sum())
    except OSError as error:
        if error.filename and Path(error.filename).resolve() == args.input.resolve():
            raise InferenceError(f"input={args.input}: cannot be read ({error})") from None
        raise InferenceError(
            f"output={args.output}: cannot be written ({error.strerror or error})"
        ) from None
    finally:
        points.close()
    return Summary(rows, ood, detector.threshold, detector.threshold_source, args.output)


def main(argv: list[str] | None = None) -> None:
    """Console entry: one summary line on success; one error line and exit code 2 otherwise."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(help_text())
        return
    try:
        args = parse_args(argv)
        check_paths(args)  # before importing torch: a mistyped path is answered at once
        summary = predict_file(args)
    except InferenceError as error:
        if debugging():
            traceback.print_exc()
        print(f"{PROG}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no output written", file=sys.stderr)
        sys.exit(130)
    print(summary.line())


if __name__ == "__main__":
    main()
