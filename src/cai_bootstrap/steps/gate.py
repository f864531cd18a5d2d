"""The stage gate: an absolute threshold and/or a significant improvement over the baseline."""

from __future__ import annotations

from ..errors import GateFailed
from ..report.model import GateOutcome
from ..stats import Comparison


def decide(cfg, stage: int, comparison: Comparison) -> GateOutcome:
    """Pass when every configured condition holds; with none configured the gate only records."""
    achieved = comparison.trained.rate
    reasons, passed = [], True
    if cfg.min_success is not None and achieved < cfg.min_success:
        passed = False
        reasons.append(f"{achieved:.1%} < threshold {cfg.min_success:.0%}")
    if cfg.require_improvement:
        m = comparison.mcnemar
        better = m.c > m.b and m.p_value < cfg.alpha
        if not better:
            passed = False
            reasons.append(f"no significant gain over baseline (McNemar b={m.b}, c={m.c}, p={m.p_value:.3g})")
    configured = cfg.min_success is not None or cfg.require_improvement
    needed = cfg.min_success if cfg.min_success is not None else comparison.base.rate
    if not reasons:
        reasons.append(
            "all configured conditions hold" if configured else "no gate configured: outcome recorded"
        )
    return GateOutcome(
        passed=passed,
        metric=cfg.metric,
        achieved=achieved,
        needed=needed if configured else None,
        configured=configured,
        reason="; ".join(reasons),
    )


def enforce(stage: int, outcome: GateOutcome) -> None:
    if outcome.configured and not outcome.passed:
        raise GateFailed(
            f"Stage {stage} FAILED: achieved {outcome.achieved:.1%} (need {outcome.needed:.1%}) - {outcome.reason}"
        )
