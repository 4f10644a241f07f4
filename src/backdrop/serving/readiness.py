"""Whether a replica is ready to serve logged decisions, and why not: the problems that make
``/readyz`` answer 503 and the warnings that do not."""

from __future__ import annotations

import time

from .candidates import missing_baselines


def readiness(service) -> tuple[list[str], list[str]]:
    """(problems that make a :class:`~.service.Service` not ready, warnings that do not)."""
    problems: list[str] = []
    warnings: list[str] = []
    unreachable = service.log.ping_problem()
    if unreachable:
        problems.append(f"event log unreachable: {unreachable}")
    else:
        write = service.log.write_problem(probe_after_s=service.settings.write_probe_s)
        if write:
            problems.append(write)
    if not service.model_loaded:
        problems.append("model not loaded")
    for version, why in sorted(service.rejected_models.items()):
        note = f"model version {version} rejected ({why}); serving version {service.model_version}"
        (warnings if service.model_version or version != max(service.rejected_models) else problems).append(note)
    if service.learner is not None:
        status = service.learner.status
        learners = [t for t in service._threads if t.name == "backdrop-learner"]
        if learners and not any(t.is_alive() for t in learners):
            problems.append("the learner thread has stopped")
        elif status.consecutive_failures >= 3:
            problems.append(f"the learner failed {status.consecutive_failures} passes in a row: {status.last_error}")
    bound = service.settings.learner_max_lag_s
    if bound is not None and service.learner_lag_s is not None and service.learner_lag_s > bound:
        problems.append(f"the learner is {service.learner_lag_s:.0f} s behind (bound {bound:g} s)")
    if not service.index.by_item:
        index = service.index
        if index.pending:
            problems.append(
                f"no servable creative: review is required and none is approved ({index.pending} pending,"
                f" {index.rejected} rejected); approve them in `backdrop console`"
            )
        elif index.withheld or index.rejected:
            problems.append(
                f"no servable creative: {index.withheld} flagged by QA (see `backdrop report`; serve_flagged is off),"
                f" {index.rejected} rejected in review"
            )
        else:
            problems.append("creative store is empty")
    elif not service.index.served_generated and (service.index.pending or service.index.withheld or service.index.rejected):
        index = service.index
        warnings.append(
            f"only the baselines (the catalog photos) are served: no generated creative is servable ({index.pending} pending"
            f" review, {index.withheld} flagged by QA, {index.rejected} rejected); review them in `backdrop console`"
        )
    stale = time.time() - service.reviews_read_at
    if stale > max(10 * service.settings.review_poll_s, 10.0):  # a rejection made meanwhile may still be served
        problems.append(f"review state not read from the store for {stale:.0f} s: {service.review_error or 'no poll yet'}")
    broken = sorted({*service.index.broken, *service.damaged.keys})
    baselines = missing_baselines(service.index, service.damaged)
    if broken or baselines:
        notes = []
        if broken:
            notes.append(
                f"{len(broken)} creative file(s) do not match the store's index (first: {broken[0]}"
                f"{': ' + service.damaged.why(broken[0]) if service.damaged.why(broken[0]) else ''}); not served;"
                f" run `backdrop store verify {service.settings.store}`"
            )
        if baselines:
            item, placement = baselines[0]
            notes.append(
                f"{len(baselines)} baseline(s) cannot be served (first: item {item}, placement {placement}: its fitted original is"
                " missing, damaged or rejected, and the catalog photo cannot stand in); decisions that need them are refused;"
                " run `backdrop generate` again or fix the catalog's image paths"
            )
        bad = len(broken) + len(baselines) > service.settings.max_broken_creatives
        (problems if bad else warnings).extend(notes)
    return problems, warnings
