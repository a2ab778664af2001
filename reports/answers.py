"""§10 of the report: the exercise's questions, each answered from what this report measured.

Every sentence is built from a number computed here or in the run's evidence (:mod:`models.evidence`):
which way a comparison goes decides the wording, and a missing run makes the answer say what to
run.  The question texts follow the exercise (2023 version: PoolUpsampleNet, ConvTransposeNet, UNet;
2021 version: the CNN with a middle block and its UNet), in its numbering.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .labels import label

#: The 2023 exercise's questions that the report answers (its section numbers).
QUESTIONS_2023 = {
    "3.3": "Which factors affect the size of the receptive field of an output unit?",
    "4.2": "Train PoolUpsampleNet as in the handout. Do the results look good? Why or why not?",
    "4.3": "Compute the number of weights, outputs and connections of PoolUpsampleNet as functions of NIC, NF "
           "and NC, and again when the width and height of the input are doubled: 6 values (ignore biases "
           "and BatchNorm).",
    "5.3": "Train ConvTransposeNet and compare it with PoolUpsampleNet: are the validation loss and accuracy "
           "better, does it train faster or slower, and why may this be the case?",
    "5.4": "How do the paddings of the stride-2 convolutions and transposed convolutions change for kernel size "
           "4 or 5, if every tensor keeps the shape of the handout's figure?",
    "5.5": "Train ConvTransposeNet with several batch sizes for a fixed number of epochs. What is the effect of "
           "the batch size on the training and validation loss, and on the quality of the output images?",
    "6.3": "Do the skip connections (UNet against ConvTransposeNet) improve the validation loss and accuracy? "
           "Do they improve the output qualitatively, and how? Give at least two reasons why skip connections "
           "may improve the performance of a CNN.",
}
#: The 2021 exercise (CNN with a middle block at H/4, and its UNet).
QUESTIONS_2021 = {
    "A.3": "Compute the number of weights, outputs and connections of the CNN as functions of NF and NC "
           "(greyscale input, NIC = 1), and again when the width and height of the input are doubled: 6 values.",
    "A.2": "Train the CNN as in the handout. Do the results look good? Why or why not?",
    "B.2": "Do the skip connections (UNet against the CNN) improve the validation loss and accuracy? Do they "
           "improve the output qualitatively, and how? Give at least two reasons why skip connections may "
           "improve the performance of a CNN.",
}


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal: ``0.5503 -> '55.0%'``.

    >>> pct(0.5503)
    '55.0%'
    """
    return f"{100 * x:.1f}%"


def _pts(x: float) -> str:
    return f"{100 * abs(x):.1f} points"


def _how_to_train(names: Sequence[str], epochs: int) -> str:
    models = ",".join(names)
    return (f"run `archcount train --model {models} --epochs {epochs} --runs runs` and then "
            f"`archcount report --runs runs` (or `archcount report --train --runs runs`, which does both)")


def _missing_runs(names: Sequence[str], main: Mapping[str, Any], epochs: int) -> str | None:
    missing = [n for n in names if n not in main]
    if not missing:
        return None
    return (f"Not measured: this report has no finished training run of {', '.join(label(n) for n in missing)}. "
            f"To answer it, {_how_to_train(missing, epochs)}.")


def _no_evidence(names: Sequence[str], training: Mapping[str, Any]) -> str | None:
    failed = training.get("evidence_failed", {})
    reasons = [f"{label(n)}: {failed[training['runs'][n].run_id]}" for n in names
               if training["runs"][n].run_id in failed]
    if not reasons:
        return None
    return ("The measurements from the predictions (baselines, colours, edges, gradients) are missing: "
            + "; ".join(reasons) + ". Pass `--data` with the images the runs were trained on.")


def _evidence(training: Mapping[str, Any], name: str) -> Any:
    run = training["runs"].get(name)
    return None if run is None else training["evidence"].get(run.run_id)


# ---------------------------------------------------------------------- counting questions

def answer_counts(qid: str, question: str, counts: Mapping[str, Any]) -> dict[str, Any]:
    """4.3 / A.3: the formulas table is the answer; the sentences state the six values and the ratios."""
    vals = {(r["convention"], r["quantity"]): r for r in counts["values"].to_dict("records")}
    hand = [vals[("handout", q)] for q in ("weights", "outputs", "connections")]
    p = counts["point"]
    six = "; ".join(f"{r['quantity']} {r['32×32']:,} at 32×32 and {r['64×64']:,} at 64×64 (×{r['64×64 / 32×32']:.2f})"
                    for r in hand)
    par = [f"For {counts['label']} under the handout's convention (convolution and transposed-convolution "
           f"weights only; biases and BatchNorm ignored), the table gives each of the 6 values as a formula in "
           f"{'NF and NC (NIC = 1)' if counts['nic'] == 1 else 'NIC, NF and NC'}, with k kept and at k = 3. "
           f"At NIC = {p['NIC']}, NF = {p['NF']}, NC = {p['NC']}, k = 3: {six}.",
           "Doubling the width and height leaves the weights unchanged (they do not depend on the input size) "
           "and multiplies every output and connection count by 4, because each layer's output area H·W/s² "
           "grows by 2·2; the ratios in the last column were computed from the evaluated formulas, not assumed."]
    variants = [r for r in counts["values"].to_dict("records") if r["convention"] != "handout"]
    if variants:
        par.append("Other accepted conventions, named: " + "; ".join(
            f"{r['convention']} {r['quantity']} {r['32×32']:,} / {r['64×64']:,}" for r in variants
            if r["quantity"] in ("weights", "outputs", "connections")) + " (32×32 / 64×64).")
    return {"id": qid, "question": question, "paragraphs": par, "table": "counts"}


def answer_paddings(padding: Mapping[str, Any], kernels: Mapping[str, Any]) -> dict[str, Any]:
    par = []
    for kv in (4, 5):
        d = padding[f"k{kv}"]
        half = ", ".join(f"padding {p}" for p, _ in d["half"]) or "no padding"
        dbl = ", ".join(f"padding {p} with output_padding {op}" for p, op in d["dbl"]) or "none"
        keep = ", ".join(f"padding {p}" for p, _ in d["keep"]) or \
            f"no symmetric padding (an even kernel needs {kv - 1} padding rows in all: {(kv - 1) // 2} before " \
            f"and {kv // 2} after, torch's padding='same')"
        par.append(f"Kernel {kv}: each stride-2 conv halving the size needs {half}; each stride-2 transposed "
                   f"conv doubling it needs {dbl}; the final stride-1 conv keeping the size needs {keep}. "
                   f"These are all the integer solutions, each checked on torch layers.")
    rows = kernels["table"].to_dict("records")
    ok = [r for r in rows if r["block shapes as in the handout"] == "yes"]
    par.append(f"Built and run on a real [2, 1, {kernels['size']}, {kernels['size']}] tensor, {len(ok)} of "
               f"{len(rows)} models ({', '.join(sorted({r['model'] for r in rows}))} at k = "
               f"{', '.join(str(x) for x in kernels['kernels'])}) keep every block shape of the handout's figure "
               f"(§6); their receptive fields are "
               + ", ".join(f"{r['receptive field']} ({r['model']}, k = {r['k']})" for r in rows) + " pixels.")
    v = kernels.get("verification")
    if v:
        par.append(f"Their formulas were verified against measurements at those kernels: {v['quantities']:,} "
                   f"quantities, {v['mismatches']} mismatches.")
    return {"id": "5.4", "question": QUESTIONS_2023["5.4"], "paragraphs": par, "table": None}


def answer_rf_factors(factors: Mapping[str, Any]) -> dict[str, Any]:
    rows = factors["rows"]

    def rf(cfg: str) -> int:
        return next(r["receptive field"] for r in rows if r["configuration"] == cfg)

    ct = [rf(f"ConvTransposeNet, k={kv}") for kv in (3, 5, 7)]
    pu = [rf(f"PoolUpsampleNet, k={kv}") for kv in (3, 5, 7)]
    dil = [rf(f"three 3×3 convs, dilation {d}") for d in (1, 2, 4)]
    depth = [rf(f"{d} × (3×3 conv) stacked") for d in (1, 2, 3, 4)]
    pooled = rf("3 × (3×3 conv) with 2×2 max-pool between")
    deeper = (rf("PoolUpsampleNet, k=3 (5 convs)"), rf("CNN (2021), k=3 (6 convs: a middle block at H/4)"))
    par = [f"Kernel size: the receptive field grows linearly with k — ConvTransposeNet {ct[0]}, {ct[1]}, {ct[2]} "
           f"pixels at k = 3, 5, 7 (+{(ct[1] - ct[0]) // 2} per step of 1 in k), PoolUpsampleNet {pu[0]}, {pu[1]}, "
           f"{pu[2]}.",
           f"Stride and pooling: downsampling multiplies the step (jump) between the input positions that later "
           f"layers see, so every later kernel covers more input: three 3×3 convs see {depth[2]} pixels, with "
           f"2×2 max-pooling between them {pooled}. At k = 3 PoolUpsampleNet (conv then max-pool) sees {pu[0]} "
           f"pixels against {ct[0]} for ConvTransposeNet (stride-2 convs), because the pooling window adds its "
           f"own extent on top of the conv's.",
           f"Dilation: a dilated kernel spreads its taps, three 3×3 convs see {dil[0]}, {dil[1]} and {dil[2]} pixels "
           f"at dilation 1, 2 and 4, with the same number of weights.",
           f"Depth: each stride-1 3×3 conv adds 2 pixels ({', '.join(map(str, depth))} for 1 to 4 convs), and a conv "
           f"after downsampling adds more: the 2021 CNN's extra middle block at H/4 raises the field from "
           f"{deeper[0]} to {deeper[1]} pixels."]
    return {"id": "3.3", "question": QUESTIONS_2023["3.3"], "paragraphs": par, "table": "rf_factors"}


# ---------------------------------------------------------------------- training questions

def _fit_sentence(run: Any) -> str:
    tl, vl = float(run.final["train_loss"]), run.final_val_loss
    best_epoch = int(run.best["epoch"])
    gap = vl - tl
    if gap > 0.05 * tl:
        verdict = (f"validation loss is above training loss by {gap:.3f} ({100 * gap / tl:.0f}%), a sign of "
                   f"over-fitting")
    elif gap < -0.02 * tl:
        verdict = (f"validation loss is below training loss ({vl:.3f} against {tl:.3f}), so the model is not "
                   f"over-fitting; it is still under-fitting")
    else:
        verdict = f"the two are within {100 * abs(gap) / tl:.0f}% of each other, no sign of over-fitting"
    trend = ("still falling at the last epoch" if best_epoch == run.epochs_completed
             else f"lowest at epoch {best_epoch} of {run.epochs_completed}")
    return (f"In the last epoch the training loss is {tl:.3f} and the validation loss {vl:.3f}: {verdict}; "
            f"the validation loss was {trend}.")


def answer_looks_good(qid: str, question: str, name: str, training: Mapping[str, Any] | None,
                      epochs: int) -> dict[str, Any]:
    """4.2 / A.2: accuracy against trivial baselines, colour collapse, edges, fit."""
    main = training["runs"] if training else {}
    missing = _missing_runs([name], main, epochs)
    if missing:
        return {"id": qid, "question": question, "paragraphs": [missing], "table": None}
    run = main[name]
    e = _evidence(training, name)
    par = [f"After {run.epochs_completed} epochs {label(name)} reaches a per-pixel validation accuracy of "
           f"{pct(run.final_val_acc)} (best {pct(run.best_val_acc)}) and a validation loss of "
           f"{run.final_val_loss:.3f}."]
    problems, strengths = [], []
    if e is None:
        par.append(_no_evidence([name], training) or "")
    else:
        b1, b2 = e.baseline_most_frequent, e.baseline_grey_nearest
        rel = []
        for nm, b in (("predicting the most frequent training colour everywhere", b1),
                      ("taking the palette colour nearest to each pixel's grey value", b2)):
            rel.append(f"{nm} scores {pct(b)} ({'+' if e.accuracy >= b else '−'}{_pts(e.accuracy - b)} for the model)")
        par.append("Two trivial baselines on the same validation pixels: " + "; ".join(rel) + ".")
        if e.accuracy < b2:
            problems.append(f"it is less accurate than copying the grey level into the nearest palette colour "
                            f"({pct(e.accuracy)} against {pct(b2)})")
        else:
            strengths.append(f"it beats both baselines (by {_pts(e.accuracy - max(b1, b2))} over the better one)")
        par.append(f"Colour use: the 3 colours it predicts most often cover {pct(e.top3_share_pred)} of the predicted "
                   f"pixels, against {pct(e.top3_share_target)} of the target pixels for the targets' 3 most frequent "
                   f"colours; it uses {e.colours_used_pred} of the {e.colours_used_target} palette colours that occur "
                   f"in the targets.")
        if e.top3_share_pred > 1.25 * e.top3_share_target:
            problems.append(f"its colours collapse onto a few (top-3 share {pct(e.top3_share_pred)} against "
                            f"{pct(e.top3_share_target)} in the targets), so the images look washed out")
        par.append(f"Edges: accuracy is {pct(e.edge_accuracy)} on edge pixels (the 20% with the largest grey-level "
                   f"gradient) and {pct(e.flat_accuracy)} on flat ones (the 50% with the smallest).")
        if e.edge_accuracy < 0.85 * e.flat_accuracy:
            problems.append(f"it is {_pts(e.flat_accuracy - e.edge_accuracy)} less accurate at edges than in flat "
                            f"regions, so boundaries blur")
    par.append(_fit_sentence(run))
    if problems:
        par.append("So the results do not look good: " + "; ".join(problems) + "."
                   + (f" On the positive side, {'; '.join(strengths)}." if strengths else ""))
    elif e is not None:
        par.append("By these measures the results look reasonable: " + "; ".join(strengths or ["no problem found"])
                   + ".")
    return {"id": qid, "question": question, "paragraphs": par, "table": None, "figure": "comparison"}


def _epoch_reaching(run: Any, target: float) -> int | None:
    for h in run.history:
        if float(h["val_loss"]) <= target:
            return int(h["epoch"])
    return None


def answer_strided(training: Mapping[str, Any] | None, sections: Mapping[str, Any], rf: Mapping[str, Any],
                   epochs: int) -> dict[str, Any]:
    """5.3: ConvTransposeNet against PoolUpsampleNet."""
    a, b = "pool_upsample", "conv_transpose"
    main = training["runs"] if training else {}
    missing = _missing_runs([a, b], main, epochs)
    if missing:
        return {"id": "5.3", "question": QUESTIONS_2023["5.3"], "paragraphs": [missing], "table": None}
    ra, rb = main[a], main[b]
    dl = rb.final_val_loss - ra.final_val_loss
    da = rb.final_val_acc - ra.final_val_acc
    par = [f"{label(b)} ends with a validation loss of {rb.final_val_loss:.3f} against {ra.final_val_loss:.3f} for "
           f"{label(a)} ({'lower' if dl < 0 else 'higher'} by {abs(dl):.3f}, {100 * abs(dl) / ra.final_val_loss:.1f}%), "
           f"and a validation accuracy of {pct(rb.final_val_acc)} against {pct(ra.final_val_acc)} "
           f"({'+' if da >= 0 else '−'}{_pts(da)}), after {rb.epochs_completed} and {ra.epochs_completed} epochs."]
    reach = _epoch_reaching(rb, ra.best_val_loss)
    speed = (f"it reaches {label(a)}'s best validation loss ({ra.best_val_loss:.3f}) at epoch {reach}"
             if reach else f"it never reaches {label(a)}'s best validation loss ({ra.best_val_loss:.3f})")
    ta, tb = ra.mean_epoch_time_s, rb.mean_epoch_time_s
    par.append(f"Training speed: per epoch {label(b)} takes {tb:.1f} s against {ta:.1f} s "
               f"({'faster' if tb < ta else 'slower'}, ×{tb / ta:.2f} the time), and in epochs {speed}. "
               f"Its first-epoch validation loss is {float(rb.history[0]['val_loss']):.3f} against "
               f"{float(ra.history[0]['val_loss']):.3f}.")
    sa, sb = sections.get(a), sections.get(b)
    why = []
    if sa and sb:
        wa, wb = sa["at32"]["weights"], sb["at32"]["weights"]
        ca, cb = sa["at32"]["connections"], sb["at32"]["connections"]
        why.append(f"both have {'the same number of' if wa == wb else 'different numbers of'} weights ({wb:,} against "
                   f"{wa:,} at k = 3), but {label(b)} learns its down- and upsampling (stride-2 convs and transposed "
                   f"convs) where {label(a)} uses fixed max-pooling and nearest-neighbour upsampling")
        cost = (f"{label(b)}'s convolutions run at lower resolution: {cb:,} connections per 32×32 image against "
                f"{ca:,} (×{cb / ca:.2f})")
        if (cb < ca) == (tb < ta):
            cost += f", which matches its {'shorter' if tb < ta else 'longer'} epochs"
        else:
            cost += (f", yet its epochs take {'longer' if tb > ta else 'less time'} here: the time per epoch is not "
                     f"set by multiply-adds alone (transposed convolutions and memory layout cost more per "
                     f"connection on this {'processor' if 'cpu' in str(rb.device) else 'device'})")
        why.append(cost)
    if a in rf and b in rf:
        why.append(f"the receptive field at k = 3 is {rf[b]} pixels for {label(b)} against {rf[a]} for {label(a)}")
    ea, eb = _evidence(training, a), _evidence(training, b)
    if ea and eb:
        why.append(f"edge accuracy is {pct(eb.edge_accuracy)} against {pct(ea.edge_accuracy)} and flat-region accuracy "
                   f"{pct(eb.flat_accuracy)} against {pct(ea.flat_accuracy)}: upsampling by copying pixels cannot "
                   f"place a colour boundary between them, a learned transposed conv can")
    if why:
        par.append("Why this may be the case: " + "; ".join(why) + ".")
    return {"id": "5.3", "question": QUESTIONS_2023["5.3"], "paragraphs": par, "table": None}


def _epoch_time_reading(small: float, large: float) -> str:
    """What the epoch times of the smallest and the largest batch say (within 5%: about the same)."""
    if large < 0.95 * small:
        return f"×{small / large:.2f} faster with the large batch: fewer, larger steps use the processor better"
    if large > 1.05 * small:
        return f"×{large / small:.2f} slower with the large batch on this machine"
    return "about the same: here the time per epoch follows the number of images, not the number of steps"


def _trend(xs: Sequence[float], ys: Sequence[float]) -> str:
    """'rises', 'falls', 'mostly rises', 'mostly falls' or 'shows no clear trend' with x."""
    ups = sum(1 for i in range(1, len(ys)) if ys[i] > ys[i - 1])
    downs = len(ys) - 1 - ups
    if ups == len(ys) - 1:
        return "rises steadily"
    if downs == len(ys) - 1:
        return "falls steadily"
    if ys[-1] > ys[0] and ups > downs:
        return "mostly rises"
    if ys[-1] < ys[0] and downs > ups:
        return "mostly falls"
    return "shows no clear trend"


def answer_batch(training: Mapping[str, Any] | None, epochs: int, batch_sizes: Sequence[int]) -> dict[str, Any]:
    """5.5: the batch-size sweep."""
    rows = training["sweep_rows"] if training else []
    if len(rows) < 2:
        have = ", ".join(str(r["batch_size"]) for r in rows) or "none"
        return {"id": "5.5", "question": QUESTIONS_2023["5.5"], "table": None, "paragraphs": [
            f"Not measured: the sweep needs finished ConvTransposeNet runs with the main run's settings at several "
            f"batch sizes (have: {have}). To answer it, run `archcount report --train --sweep --runs runs` "
            f"(batch sizes {', '.join(map(str, batch_sizes))}, {epochs} epochs each)."]}
    bs = [r["batch_size"] for r in rows]
    tl = [r["final_train_loss"] for r in rows]
    vl = [r["final_val_loss"] for r in rows]
    acc = [r["final_val_acc"] for r in rows]
    e = rows[0]["epochs"]
    par = [f"After {e} epochs at each batch size ({', '.join(map(str, bs))}), the final training loss "
           f"{_trend(bs, tl)} with the batch size, from {tl[0]:.3f} at {bs[0]} to {tl[-1]:.3f} at {bs[-1]}, and the "
           f"validation loss {_trend(bs, vl)}, from {vl[0]:.3f} to {vl[-1]:.3f} (accuracy {pct(acc[0])} to "
           f"{pct(acc[-1])}; lowest validation loss {min(vl):.3f} at batch {bs[vl.index(min(vl))]})."]
    steps = [r["steps"] for r in rows]
    if all(s is not None for s in steps):
        par.append(f"A fixed number of epochs means fewer parameter updates for larger batches: {steps[0]} steps per "
                   f"epoch at batch {bs[0]} against {steps[-1]} at batch {bs[-1]} ({steps[0] * e:,} against "
                   f"{steps[-1] * e:,} updates in all), with the same learning rate.")
    t = [r["epoch_time_s"] for r in rows]
    par.append(f"Time per epoch: {t[0]:.1f} s at batch {bs[0]} and {t[-1]:.1f} s at batch {bs[-1]} "
               f"({_epoch_time_reading(t[0], t[-1])}).")
    top = [r["top3"] for r in rows]
    if all(x is not None for x in top):
        edge = [r["edge_acc"] for r in rows]
        par.append(f"Image quality (the sample strip below, the same validation images per batch size): the 3 most "
                   f"predicted colours cover {pct(top[0])} of the pixels at batch {bs[0]} and {pct(top[-1])} at batch "
                   f"{bs[-1]}, and edge accuracy goes from {pct(edge[0])} to {pct(edge[-1])}: "
                   + ("the large-batch outputs are more uniform, with fewer colours and blurrier boundaries."
                      if top[-1] > top[0] and edge[-1] < edge[0] else
                      "the small-batch outputs are the more uniform here." if top[-1] < top[0] else
                      "the colour variety changes little with the batch size."))
    return {"id": "5.5", "question": QUESTIONS_2023["5.5"], "paragraphs": par, "table": "sweep",
            "figure": "sweep_samples"}


def answer_skips(qid: str, question: str, plain: str, skip: str, training: Mapping[str, Any] | None,
                 sections: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """6.3 / B.2: the model with skip connections against the one without."""
    main = training["runs"] if training else {}
    missing = _missing_runs([plain, skip], main, epochs)
    if missing:
        return {"id": qid, "question": question, "paragraphs": [missing], "table": None}
    ra, rb = main[plain], main[skip]
    dl = rb.final_val_loss - ra.final_val_loss
    da = rb.final_val_acc - ra.final_val_acc
    better = dl < 0 and da > 0
    par = [f"{'Yes' if better else 'Not in both'}: {label(skip)} ends with a validation loss of {rb.final_val_loss:.3f} "
           f"against {ra.final_val_loss:.3f} for {label(plain)} ({'−' if dl < 0 else '+'}{abs(dl):.3f}) and a "
           f"validation accuracy of {pct(rb.final_val_acc)} against {pct(ra.final_val_acc)} "
           f"({'+' if da >= 0 else '−'}{_pts(da)}), after {rb.epochs_completed} epochs each."]
    ea, eb = _evidence(training, plain), _evidence(training, skip)
    if ea is None or eb is None:
        par.append(_no_evidence([plain, skip], training) or "")
        return {"id": qid, "question": question, "paragraphs": par, "table": None}
    de, df = eb.edge_accuracy - ea.edge_accuracy, eb.flat_accuracy - ea.flat_accuracy
    qual = (f"Qualitatively (the comparison figure shows the same validation images for every model): on edge pixels "
            f"{label(skip)} is {pct(eb.edge_accuracy)} accurate against {pct(ea.edge_accuracy)} "
            f"({'+' if de >= 0 else '−'}{_pts(de)}), on flat pixels {pct(eb.flat_accuracy)} against "
            f"{pct(ea.flat_accuracy)} ({'+' if df >= 0 else '−'}{_pts(df)})")
    qual += (", so the gain is largest at boundaries: sharper colour edges." if de > df and de > 0 else
             ", so the gain is not concentrated at edges." if de > 0 or df > 0 else ", no qualitative gain here.")
    qual += (f" Its 3 most used colours cover {pct(eb.top3_share_pred)} of its pixels against "
             f"{pct(ea.top3_share_pred)} ({pct(eb.top3_share_target)} in the targets).")
    par.append(qual)
    reasons = []
    ga, gb = ea.grad_norm_first, eb.grad_norm_first
    hist, history_agrees = "", True
    if ea.grad_norm_history and eb.grad_norm_history:
        ha = sum(ea.grad_norm_history) / len(ea.grad_norm_history)
        hb = sum(eb.grad_norm_history) / len(eb.grad_norm_history)
        hist, history_agrees = f"; averaged over the training epochs {hb:.4f} against {ha:.4f}", hb > ha
    else:
        hist = ("; the per-epoch history needs a training run that records grad_norm_first in metrics.csv, "
                "measured here on the finished weights")
    if gb > ga and not history_agrees:
        reasons.append(f"gradient flow, only weakly supported by these runs: on the finished weights the gradient "
                       f"reaching the first layer is ×{gb / ga:.2f} larger with the skips (norm {gb:.4f} against "
                       f"{ga:.4f} on the same 100 training images), but not on average over training ({hb:.4f} "
                       f"against {ha:.4f}); the skip from block 1 to block 4 does give it a path that bypasses the "
                       f"bottleneck")
    elif gb > ga:
        reasons.append(f"gradient flow: the gradient reaching the first layer is ×{gb / ga:.2f} larger with the skips "
                       f"(norm {gb:.4f} against {ga:.4f} on the same 100 training images{hist}), because the skip "
                       f"from block 1 to block 4 gives it a path that bypasses the bottleneck")
    else:
        reasons.append(f"gradient flow is not what helps here: the first layer's gradient is not larger with the "
                       f"skips ({gb:.4f} against {ga:.4f}{hist})")
    if de > 0:
        reasons.append(f"detail: the skips hand block 4 and the final conv full-resolution features and the grey "
                       f"input itself, which the bottleneck at H/4 has lost; edge accuracy rises by {_pts(de)}")
    sa, sb = sections.get(plain), sections.get(skip)
    if sa and sb:
        wa, wb = sa["at32"]["weights"], sb["at32"]["weights"]
        ca, cb = sa["at32"]["connections"], sb["at32"]["connections"]
        reasons.append(f"cost: the skips add {wb - wa:,} weights ({wb:,} against {wa:,}, +{100 * (wb - wa) / wa:.1f}%) "
                       f"and {cb - ca:,} connections per 32×32 image (+{100 * (cb - ca) / ca:.1f}%), small for the gain")
    par.append("Reasons, with the measurements: " + "; ".join(f"({i}) {r}" for i, r in enumerate(reasons, 1)) + ".")
    return {"id": qid, "question": question, "paragraphs": par, "table": None, "figure": "comparison"}


# ---------------------------------------------------------------------- all answers

def exercise_versions(names: Sequence[str]) -> list[str]:
    """Which exercises the report's models belong to: "2023" and/or "2021"."""
    out = []
    if any(n in names for n in ("pool_upsample", "conv_transpose", "unet")):
        out.append("2023")
    if any(n in names for n in ("cnn_2021", "unet_2021")):
        out.append("2021")
    return out


def all_answers(*, names: Sequence[str], sections: Sequence[Mapping[str, Any]], counts: Mapping[str, Any],
                padding: Mapping[str, Any], kernels: Mapping[str, Any], rf_factors: Mapping[str, Any],
                rf: Sequence[Mapping[str, Any]], training: Mapping[str, Any] | None, epochs: int,
                batch_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Every question of the exercise versions the report's models belong to, answered."""
    by_name = {s["name"]: s for s in sections}
    rf_k3 = {r["name"]: r["output_k3"] for r in rf}
    out = []
    versions = exercise_versions(names)
    if "2023" in versions:
        out.append(answer_rf_factors(rf_factors))
        out.append(answer_looks_good("4.2", QUESTIONS_2023["4.2"], "pool_upsample", training, epochs))
        if "pool_upsample" in counts:
            out.append(answer_counts("4.3", QUESTIONS_2023["4.3"], counts["pool_upsample"]))
        out.append(answer_strided(training, by_name, rf_k3, epochs))
        out.append(answer_paddings(padding, kernels))
        out.append(answer_batch(training, epochs, batch_sizes))
        out.append(answer_skips("6.3", QUESTIONS_2023["6.3"], "conv_transpose", "unet", training, by_name, epochs))
    if "2021" in versions:
        if "cnn_2021" in counts:
            out.append(answer_counts("A.3", QUESTIONS_2021["A.3"], counts["cnn_2021"]))
        out.append(answer_looks_good("A.2", QUESTIONS_2021["A.2"], "cnn_2021", training, epochs))
        out.append(answer_skips("B.2", QUESTIONS_2021["B.2"], "cnn_2021", "unet_2021", training, by_name, epochs))
    for a in out:
        a["paragraphs"] = [p for p in a["paragraphs"] if p]
        a["version"] = "2021" if a["id"][0].isalpha() else "2023"
    return out
