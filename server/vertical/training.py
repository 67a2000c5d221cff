"""The bank's side of a vertical run, driving the platform through Flower messages.

1. The PSI session's matches (bank merchant id, platform handle) and the bank's own half; a
   share of the matched merchants (by a hash of the id) is held out for evaluation.
2. `query.hello`: the platform opens the run and names the handles it withholds.
3. Labels: randomized response once per run (`label-dp rr`, default), or Gaussian noise on
   every returned gradient with DP-SGD on the top model (`gaussian`), or none (`off`); the
   run's label ε is charged to the bank's ledger before anything is sent.
4. Epochs of `train.step`: each message carries the gradients for the previous batch and the
   handles of the next; the reply carries that batch's embeddings; the top model steps.
5. `evaluate.embed` for the held-out handles: test AUC/KS. `train.finish`: the platform saves
   its half and returns its hash. The bank saves its half and `report.json` in `out`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid

from federation.errors import YinqiError
from federation.vertical.config import VerticalConfig

log = logging.getLogger("yinqi.vertical")
REPLY, ARRAYS = "vfl-reply", "vfl-arrays"


class VerticalError(YinqiError):
    """A vertical run that cannot go on; the message says why and what was (not) saved."""


@dataclass
class Aligned:
    """The matched merchants: bank rows, platform handles, and which are held out."""

    bank_rows: np.ndarray
    handles: np.ndarray
    test: np.ndarray


class PlatformLink:
    """One platform node behind the Grid; every reply is checked for a refusal."""

    def __init__(self, grid: Grid, node_id: int, timeout: float) -> None:
        self.grid, self.node_id, self.timeout = grid, node_id, timeout
        self.platform = f"node {node_id}"

    def ask(
        self, kind: str, config: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        content = RecordDict({"vfl-request": ConfigRecord(config or {})})
        if arrays:
            content.array_records[ARRAYS] = ArrayRecord(
                array_dict={k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()}
            )
        message = Message(content, dst_node_id=self.node_id, message_type=kind)
        replies = list(self.grid.send_and_receive([message], timeout=self.timeout))
        if not replies:
            raise VerticalError(
                f"{self.platform} did not answer '{kind}' within {self.timeout:.0f} s; the model was NOT saved"
            )
        reply = replies[0]
        if reply.has_error():
            reason = str(reply.error.reason)
            raise VerticalError(f"{self.platform} failed on '{kind}': {reason}; the model was NOT saved")
        record = dict(reply.content.config_records.get(REPLY, {}))
        if "refused" in record:
            who, why = str(record.get("platform", self.platform)), str(record["refused"])
            raise VerticalError(f"platform {who} refused '{kind}': {why}; the model was NOT saved")
        arrays_out = reply.content.array_records.get(ARRAYS)
        return record, ({k: arrays_out[k].numpy() for k in arrays_out} if arrays_out is not None else {})


def open_with_partner(grid: Grid, seconds: float) -> tuple[PlatformLink, dict[str, Any]]:
    """Say hello to every connected node: the one that holds the PSI session is the partner.

    Other platforms' nodes do not know the session and refuse; two nodes that both claim it
    are an error (the bank will not guess which one to train with).
    """
    deadline = time.monotonic() + seconds
    while not (nodes := [int(n) for n in grid.get_node_ids()]):
        if time.monotonic() > deadline:
            raise VerticalError(f"no platform node connected within {seconds:.0f} s")
        time.sleep(0.05)
    links = [PlatformLink(grid, node, max(seconds, 60.0)) for node in nodes]
    opened: list[tuple[PlatformLink, dict[str, Any]]] = []
    refusals: list[str] = []
    for link in links:
        try:
            hello, _ = link.ask("query.hello")
        except VerticalError as exc:
            refusals.append(str(exc).removesuffix("; the model was NOT saved"))
            continue
        link.platform = str(hello.get("platform", link.platform))
        opened.append((link, hello))
    if len(opened) != 1:
        names = ", ".join(link.platform for link, _ in opened) or "none"
        raise VerticalError(
            f"{len(opened)} connected platforms hold this PSI session ({names}); expected exactly one. "
            f"Refusals: {'; '.join(refusals) or 'none'}"
        )
    return opened[0]


def align(
    matches: tuple[tuple[str, int], ...], bank_index: dict[str, int], withheld: set[int], test: np.ndarray
) -> Aligned:
    pairs = [(bank_index[m], h) for m, h in matches if m in bank_index and h not in withheld]
    if not pairs:
        raise VerticalError("no merchant is both in the bank's file and usable at the platform; nothing to train on")
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    return Aligned(rows, np.array([h for _, h in pairs], dtype=np.int64), test[rows])


def run_vertical(grid: Grid, context: Context) -> dict[str, Any]:
    """The whole run at the bank; writes the top half and report.json to `cfg.out`."""
    from federation.metrics import ks_statistic, roc_auc
    from federation.vertical.data import fit_encoder, held_out, load_mapping, load_party
    from federation.vertical.model import TOP_FILE, combined_digest, save_half, top_logits, top_model
    from federation.vertical.privacy import ReleasePlan, randomized_response
    from federation.vertical.steps import BankHalf, Dp, secure_generator
    from server.vertical.ledger import LabelLedger
    from server.vertical.store import PsiStore

    started = time.perf_counter()
    cfg = VerticalConfig.from_run_config(dict(context.run_config))
    cfg.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "mode": "vertical",
        "status": "running",
        "session": cfg.session,
        "settings": cfg.model_dump(mode="json"),
    }
    try:
        intersection = PsiStore(cfg.bank_db).get(cfg.session)
        if intersection.matches is None:
            raise VerticalError(
                f"PSI session {cfg.session} was cardinality-only: the bank knows no matches to train on"
            )
        bank = load_party(cfg.bank_data, load_mapping(cfg.bank_mapping), labelled=True, positive=cfg.positive)
        assert bank.y is not None
        link, hello = open_with_partner(grid, cfg.node_wait_seconds)
        withheld = set(json.loads(str(hello.get("withheld", "[]"))))
        aligned = align(intersection.matches, bank.index(), withheld, held_out(bank.ids, cfg.test_share, cfg.seed))
        train_rows, train_handles = aligned.bank_rows[~aligned.test], aligned.handles[~aligned.test]
        test_rows, test_handles = aligned.bank_rows[aligned.test], aligned.handles[aligned.test]
        if len(train_rows) == 0 or len(np.unique(bank.y[train_rows])) < 2:
            raise VerticalError(f"{len(train_rows)} aligned training merchants, need both classes")
        encoder = fit_encoder(bank.subset(train_rows))
        xb = encoder.transform(bank.frame, file=str(cfg.bank_data))
        rng = np.random.default_rng(cfg.seed if cfg.reproducible else None)
        y = bank.y.astype(np.float32)
        dp = None
        label_epsilon = 0.0
        if cfg.label_dp == "rr":
            y = randomized_response(bank.y, cfg.label_epsilon, rng).astype(np.float32)
            label_epsilon = cfg.label_epsilon
        elif cfg.label_dp == "gaussian":
            plan = ReleasePlan.calibrate(cfg.label_epsilon, cfg.delta, cfg.epochs)
            dp = Dp(plan.noise_multiplier, cfg.gradient_clip, 1.0)
            label_epsilon = cfg.label_epsilon
        if cfg.label_dp != "off":
            report["label_epsilon_lifetime"] = LabelLedger(cfg.bank_db).charge(
                run_id=str(context.run_id),
                session_id=cfg.session,
                platform=link.platform,
                mechanism=cfg.label_dp,
                epsilon=label_epsilon,
                delta=cfg.delta if cfg.label_dp == "gaussian" else 0.0,
                rows=len(train_rows),
                budget=cfg.label_epsilon_budget,
            )
        top = top_model(encoder.n_features, cfg.embedding_dim, cfg.hidden, cfg.seed)
        half = BankHalf(
            top,
            lr=cfg.lr,
            momentum=cfg.momentum,
            dp=dp,
            generator=secure_generator(cfg.seed if cfg.reproducible else None),
        )
        losses = []
        grads: np.ndarray | None = None
        steps = 0
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(train_rows))
            epoch_losses = []
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start : start + cfg.batch_size]
                arrays = {"handles": train_handles[batch]}
                if grads is not None:
                    arrays["grads"] = grads
                _, out = link.ask("train.step", {"epoch": epoch}, arrays)
                e = _embeddings(out, len(batch), cfg.embedding_dim, link.platform)
                rows = train_rows[batch]
                grads, loss = half.step(xb[rows], e, y[rows], np.ones(len(batch), bool))
                epoch_losses.append(loss)
                steps += 1
            losses.append(float(np.mean(epoch_losses)))
            log.info("vertical epoch %d/%d: loss %.4f", epoch + 1, cfg.epochs, losses[-1])
        link.ask(
            "train.step",
            {"epoch": cfg.epochs},
            {"grads": grads} if grads is not None else {"handles": np.zeros(0, np.int64)},
        )
        metrics: dict[str, Any] = {"test_rows": len(test_rows)}
        if len(test_rows):
            _, out = link.ask("evaluate.embed", {}, {"handles": test_handles})
            z = top_logits(top, xb[test_rows], _embeddings(out, len(test_rows), cfg.embedding_dim, link.platform))
            if len(np.unique(bank.y[test_rows])) == 2:
                metrics.update(
                    {"test_auc": roc_auc(bank.y[test_rows], z), "test_ks": ks_statistic(bank.y[test_rows], z)}
                )
        finished, _ = link.ask("train.finish")
        bottom_sha = str(finished["bottom-sha256"])
        meta = {
            "mode": "vertical",
            "embedding_dim": cfg.embedding_dim,
            "hidden": cfg.hidden,
            "seed": cfg.seed,
            "embedding_clip": cfg.embedding_clip,
            "label": "default",
            "platform": link.platform,
            "session": cfg.session,
            "bottom_sha256": bottom_sha,
            "label_dp": cfg.label_dp,
            "label_epsilon": label_epsilon,
            "feature_epsilon": float(finished.get("feature-epsilon", 0.0)),
        }
        top_sha = save_half(cfg.out, TOP_FILE, top, encoder, meta)
        report.update(
            {
                "status": "completed",
                "platform": link.platform,
                "psi_platform": intersection.platform,
                "participants": [link.platform],
                "aligned": len(aligned.bank_rows),
                "train_rows": len(train_rows),
                "withheld": len(withheld),
                "steps": steps,
                "epoch_loss": losses,
                "final": metrics,
                "top_sha256": top_sha,
                "bottom_sha256": bottom_sha,
                "version_hash": combined_digest(top_sha, bottom_sha),
                "epsilon": {
                    "labels (bank)": label_epsilon,
                    f"features ({link.platform})": float(finished.get("feature-epsilon", 0.0)),
                },
                "label_dp": cfg.label_dp,
                "platform_model_dir": finished.get("model-dir"),
            }
        )
    except YinqiError as exc:
        report.update({"status": "failed", "error": str(exc)})
        raise
    finally:
        report["seconds"] = time.perf_counter() - started
        (cfg.out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report


def _embeddings(out: dict[str, np.ndarray], rows: int, dim: int, platform: str) -> np.ndarray:
    e = out.get("embeddings")
    if e is None or e.shape != (rows, dim) or not np.isfinite(e).all():
        shape = None if e is None else e.shape
        raise VerticalError(f"platform {platform} sent embeddings of shape {shape} (expected {(rows, dim)}, finite)")
    return e.astype(np.float32)
