"""The paper's study, end to end: a simulated audience served through the real decision service.

A synthetic population (:mod:`backdrop.bandit.simulator`, over the store's own products, styles and
placements) sends impressions over HTTP to ``backdrop serve`` running as a separate process on the
demo store, with an A/B/n experiment configured in the service:

* ``original`` -- the catalog image (the control);
* ``random`` -- a generated creative in a uniformly random stored style (isolates "generated vs
  catalog image", and is the randomised log that off-policy evaluation needs);
* ``fixed`` -- the best single style of each product's style set (the retailer's best default);
* ``personalized`` -- the service's policy (default its default, ``pooled-ucb``) choosing the style
  per (user, item, placement), trained online by the service's learner on its own traffic only.

A "style" here is an arm as the service serves it: a style, or a style with an overlay
(``"studio-sweep+price"``, as ``backdrop demo`` makes them). The audience's click model knows each
product's servable arms (:func:`store_arms`) and gives an overlay arm its style's appeal plus an
effect of the overlay's own (:mod:`backdrop.bandit.simulator`).

Clicks are drawn from the simulator's click model, whose effect sizes are configuration (defaults
mirror the paper's reported effects). The analysis reads the service's event log, not the client's
bookkeeping: per-arm CTR, lifts with intervals, p-values, the ablations the paper lacks, CTR over
time, cumulative regret against the oracle, and off-policy estimates from the randomised arm alone
compared with what the online arm gave.

Any failure of the traffic (an error answer, an arm the click model does not know, an exception in a
client thread) ends the study with its reason; it never goes on to analyse an unfinished log.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..bandit.arms import ORIGINAL
from ..bandit.evaluation import estimate, shrunk_ctr_reward_model
from ..bandit.simulator import ClickModel, Population, SimulationConfig, split_arm
from ..errors import BackdropError
from ..text import split_path
from . import stats
from .abtest import Impressions, analyze, compare, over_time

if TYPE_CHECKING:
    import http.client

ARMS = ("original", "random", "fixed", "personalized")
#: the ablations, each isolating one step: (name, treatment arm, control arm, what it isolates)
ABLATIONS = (
    ("generated vs catalog image", "random", "original", "a generated background, style left to chance"),
    ("style choice vs random style", "fixed", "random", "choosing the best single style per product"),
    ("personalised vs best single style", "personalized", "fixed", "the bandit per (user, item, placement)"),
    ("generated + best style vs catalog image", "fixed", "original", "the paper's first A/B"),
    ("personalised vs catalog image", "personalized", "original", "everything together"),
)
SIMULATED = "Clicks in this study are simulated: the audience and its click model are synthetic."


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    impressions: int = Field(default=60_000, ge=400)
    #: traffic share per arm
    shares: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(ARMS, 1.0))
    #: the click model's effects; the defaults mirror the paper (generated ~ +15 %, personalisation ~ +5 %
    #: of the oracle's +10 % being reachable), at a 2 % base CTR so a laptop run can see something
    base_ctr: float = Field(default=0.02, gt=0, lt=0.5)
    generated_lift: float = Field(default=0.15, gt=-0.9, le=5)
    style_spread: float = Field(default=0.10, ge=0, le=5)
    personal_spread: float = Field(default=0.10, ge=0, le=5)
    seed: int = 0
    #: the served policy (a servable name, ``backdrop.bandit.SERVABLE``) and its exploration (None: its own default)
    policy: str = "pooled-ucb"
    alpha: float | None = None
    epsilon: float = 0.05
    #: the service's join window and the learner's pass interval (short: the study is compressed in time)
    join_window_s: float = 5.0
    learn_interval_s: float = 1.0
    client_threads: int = Field(default=4, ge=1, le=64)


@dataclass
class Served:
    """What the client saw for one impression (the analysis itself reads the service's log)."""

    arm: np.ndarray
    style: np.ndarray
    p_true: np.ndarray
    p_oracle: np.ndarray
    click: np.ndarray


# -- the population over the store --------------------------------------------------------------


@dataclass
class StoreArms:
    """What the study can serve from a store: per product, the arms the decision service would
    choose between (the same on every placement), and the products it leaves out, with why."""

    arms: dict[str, tuple[str, ...]]
    categories: dict[str, tuple[str, ...]]
    placements: list[str]
    left_out: dict[str, str]


def store_arms(store_root: Path) -> StoreArms:
    """The arms the service serves for each product of the store: its styles, and every variant of
    a style the store holds (an overlay: ``"studio-sweep+price"``), in the style library's order.

    What counts is what the service itself would serve (:class:`~backdrop.serving.index.CreativeIndex`:
    QA-flagged and rejected creatives are not), so the click model knows every arm a decision can
    name. A product whose arms differ between placements is left out (the click model gives a
    product one set of arms), and so is one with no arm at all."""
    from ..serving.index import CreativeIndex
    from ..styles import StyleLibrary

    index = CreativeIndex.load(store_root)
    by_product: dict[str, dict[str, frozenset[str]]] = {}
    for (pid, placement), creatives in index.by_item.items():
        by_product.setdefault(pid, {})[placement] = frozenset(a for a in creatives if a != ORIGINAL)
    if not any(a for per in by_product.values() for a in per.values()):
        raise BackdropError(f"{store_root}: the store has no creatives to serve; run `backdrop demo` first")
    placements = sorted({pl for per in by_product.values() for pl, a in per.items() if a})
    library = StyleLibrary.load()
    arms: dict[str, tuple[str, ...]] = {}
    categories: dict[str, tuple[str, ...]] = {}
    left_out: dict[str, str] = {}
    for pid, product in sorted(index.products.items()):
        per = by_product.get(pid, {})
        sets = {per.get(pl, frozenset()) for pl in placements}
        if sets == {frozenset()}:
            left_out[pid] = "no creative the service would serve"
            continue
        if len(sets) != 1:
            where = "; ".join(f"{pl}: {', '.join(sorted(per.get(pl, ()))) or 'none'}" for pl in placements)
            left_out[pid] = f"its servable arms differ between placements ({where})"
            continue
        path = split_path(product["category"])
        order = {s.name: k for k, s in enumerate(library.for_category(path))}
        arms[pid] = tuple(
            sorted(next(iter(sets)), key=lambda a: (order.get(split_arm(a)[0], len(order)), split_arm(a)[0], split_arm(a)[2]))
        )
        categories[pid] = path
    return StoreArms(arms, categories, placements, left_out)


def population_for_store(store_root: Path, config: StudyConfig, found: StoreArms | None = None) -> tuple[Population, ClickModel]:
    """The simulator's audience over the store's products, placements and servable arms (``found``,
    default :func:`store_arms`): styles and their overlays; the click model gives an overlay arm its
    style's appeal plus the overlay's own effect (see :mod:`backdrop.bandit.simulator`)."""
    found = found or store_arms(store_root)
    if len(found.arms) < 2:
        why = "; ".join(f"{pid}: {reason}" for pid, reason in sorted(found.left_out.items())[:3])
        raise BackdropError(
            f"{store_root}: fewer than 2 products have the same servable arms on every placement" + (f" ({why})" if why else "")
        )
    items = [SimpleNamespace(product_id=pid, category_path=found.categories[pid]) for pid in found.arms]
    shares = {"square": 0.45, "landscape": 0.2, "story": 0.35}
    sim = SimulationConfig(
        placements={pl: shares.get(pl, 0.25) for pl in found.placements},
        base_ctr=config.base_ctr,
        generated_lift=config.generated_lift,
        style_spread=config.style_spread,
        personal_spread=config.personal_spread,
        seed=config.seed,
    )
    population = Population(sim, items, arms=found.arms)
    return population, ClickModel(population)


def best_styles(population: Population, clicks: ClickModel) -> dict[str, str]:
    """item -> the best single style of its style set (what the ``fixed`` arm serves)."""
    sets, of = population.style_sets, population.product_set
    return {pid: clicks.best_fixed[sets[of[i]]] for i, pid in enumerate(population.product_ids)}


# -- the service, as a separate process ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """``backdrop serve`` in its own process group (stopped on exit, whatever happens)."""

    def __init__(self, store: Path, out: Path, service_config: dict, api_key: str, learn_interval_s: float):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = out / "service.yaml"
        cfg.write_text(yaml.safe_dump(service_config, sort_keys=False))
        self.log_path = out / "service.log"
        cmd = [
            sys.executable,
            "-m",
            "backdrop.cli",
            "serve",
            "--store",
            str(store),
            "--db",
            str(out / "events.sqlite"),
            "--config",
            str(cfg),
            "--port",
            str(self.port),
            "--learn",
            "--learn-interval",
            str(learn_interval_s),
        ]
        # the key by environment: not in `ps`, and a key starting with "-" is not taken for an option
        env = os.environ | {"BACKDROP_API_KEY": api_key}
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, env=env)

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise BackdropError(f"the decision service exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BackdropError(f"the decision service did not become ready in {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# -- running it ---------------------------------------------------------------------------------


def run_study(store: Path, out: Path, config: StudyConfig | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Serve the simulated audience through the service, analyse its log, write ``out``; the result dict."""
    config = config or StudyConfig()
    unknown = set(config.shares) - set(ARMS)
    if unknown or not set(ARMS) <= set(config.shares):
        raise BackdropError(f"shares: give one share for each of {', '.join(ARMS)} (got {', '.join(config.shares)})")
    store, out = Path(store), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "events.sqlite").exists():
        raise BackdropError(f"{out}: already holds a study's event log; use a new --out directory")
    t_start = time.time()
    found = store_arms(store)
    population, clicks = population_for_store(store, config, found)

    best = best_styles(population, clicks)
    service_config = {
        "join_window_s": config.join_window_s,
        "commit_grace_s": 2.5,
        "model_poll_s": 0.5,
        # the study analyses every impression, so none may fall back unlogged on a loaded machine
        # (an ad server wants the 50 ms default: an ad now, unlogged, rather than a late one)
        "log_timeout_ms": 5000,
        "policy": served_policy(config).model_dump(mode="json"),
        "features": population.encoder_config(64).model_dump(),
        "experiment": {
            "name": f"study-{config.seed}",
            "arms": {
                "original": {"share": config.shares["original"], "serve": "original"},
                "random": {"share": config.shares["random"], "serve": "random"},
                "fixed": {"share": config.shares["fixed"], "serve": "fixed", "styles": best},
                "personalized": {"share": config.shares["personalized"], "serve": "policy"},
            },
        },
    }
    rng = np.random.default_rng([config.seed, 2408])
    batch = population.sample_impressions(config.impressions, rng)
    p0, P, _ = clicks.probabilities(batch)
    u = rng.random(config.impressions)
    api_key = secrets.token_urlsafe(16)

    service = ServiceProcess(store, out, service_config, api_key, config.learn_interval_s)
    try:
        service.wait_ready()
        served = _drive(service.url, api_key, population, batch, p0, P, u, config, progress)
    finally:
        service.stop()
    learn_the_rest(store, out)
    serve_seconds = time.time() - t_start

    result = analyse(out / "events.sqlite", population, clicks, batch, served, config)
    result["seconds"] = {"serving": round(serve_seconds, 1), "total": round(time.time() - t_start, 1)}
    result["impressions_per_s"] = round(config.impressions / serve_seconds, 1)
    result["left_out"] = found.left_out
    (out / "study.json").write_text(json.dumps(result, indent=1, default=float))
    from .report import write_study_report

    write_study_report(result, out)
    return result


def learn_the_rest(store: Path, out: Path) -> int:
    """The learner's last passes, over the traffic the service's learner had not folded when it
    stopped; the number of model versions they published.

    The study compresses time: its last join windows close only when the service stops, and how much
    the running learner folded before then depends on how fast the machine served the traffic. With
    the service stopped nothing can join any more, so the log ends with a model of all of it.
    """
    from ..serving.eventlog import open_event_log
    from ..serving.learner import Learner
    from ..serving.settings import load_settings

    settings = load_settings(out / "service.yaml", store=store, db=str(out / "events.sqlite"))
    log = open_event_log(settings.db_url)
    try:
        return len(Learner.for_settings(log, settings).drain())
    finally:
        log.close()


def _drive(url, api_key, population, batch, p0, P, u, config: StudyConfig, progress) -> Served:
    """Send every impression to the service from ``config.client_threads`` threads and draw the clicks.

    Any failure in a thread (an error answer, an arm the click model does not know, an exception)
    stops every thread and is raised here with its reason: a study never goes on to analyse a log
    its traffic did not finish."""
    n = config.impressions
    arm = np.empty(n, dtype=object)
    style = np.empty(n, dtype=object)
    p_true = np.zeros(n)
    click = np.zeros(n, dtype=bool)
    p_oracle = np.nanmax(P, axis=1)
    sets = population.style_sets
    col = [{s: k for k, s in enumerate(styles)} for styles in sets]
    counter = iter(range(n))
    lock = threading.Lock()
    failures: list[str] = []
    done = [0]

    def send(http: _Client, i: int) -> str | None:
        """Impression ``i``: None when served (and clicked or not), else why it failed."""
        user = int(batch.user[i])
        product = int(batch.product[i])
        item = population.product_ids[product]
        body = {
            "request_id": f"study-{config.seed}-{i}",
            "item_id": item,
            "placement": population.placements[int(batch.placement[i])],
            "user": {"id": population.user_ids[user], "features": population.users[user]},
        }
        r = http.post("/v1/decide", body)
        if r.status_code != 200 or r.json()["decision_id"] is None:
            return f"decide {i}: {r.status_code} {r.text[:300]}"
        d = r.json()
        s = d["style"]
        if s == ORIGINAL:
            p = p0[i]
        else:
            k = col[population.product_set[product]].get(s)
            if k is None:
                known = ", ".join(sets[population.product_set[product]])
                return (
                    f"decide {i}: the service served arm '{s}' for {item}, which the study's click model does not know (it knows {known})"
                )
            p = P[i, k]
        arm[i], style[i], p_true[i] = d["experiment_arm"], s, p
        if u[i] < p:
            click[i] = True
            fb = http.post("/v1/feedback", {"decision_id": d["decision_id"], "reward": 1}, {"X-API-Key": api_key})
            if fb.status_code != 200:
                return f"feedback {i}: {fb.status_code} {fb.text[:300]}"
        return None

    def worker():
        try:
            with _Client(url) as http:
                while not failures:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    why = send(http, i)
                    if why is not None:
                        failures.append(why)
                        return
                    with lock:
                        done[0] += 1
                        if progress is not None and done[0] % 500 == 0:
                            progress(500)
        except BaseException as e:  # noqa: BLE001 - any error ends the study, reported below with its reason
            failures.append(f"a client thread failed: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, daemon=True, name=f"study-client-{k}") for k in range(config.client_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise BackdropError(f"the study's traffic failed after {done[0]} of {n} impressions: {failures[0]}{more}")
    return Served(arm=arm, style=style, p_true=p_true, p_oracle=p_oracle, click=click)


class _Client:
    """A keep-alive JSON client on the standard library: a fraction of httpx's CPU per request,
    which matters when the client and the service share two cores."""

    def __init__(self, url: str):
        from urllib.parse import urlsplit

        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.conn: http.client.HTTPConnection | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.conn is not None:
            self.conn.close()

    def post(self, path: str, body: dict, headers: dict | None = None) -> SimpleNamespace:
        import http.client

        data = json.dumps(body).encode()
        for attempt in range(5):
            try:
                if self.conn is None:
                    assert self.host is not None, "the service URL has no host"
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.conn.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
                r = self.conn.getresponse()
                text = r.read().decode()
                return SimpleNamespace(status_code=r.status, text=text, json=lambda t=text: json.loads(t))
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                time.sleep(0.2 * (attempt + 1))
        raise BackdropError(f"the decision service at {self.host}:{self.port} stopped answering {path}")


# -- the analysis (from the service's event log) --------------------------------------------------


def impressions_from_log(db: Path | str, metric: str = "ctr") -> tuple[Impressions, list, int]:
    """Impressions of every activated decision in an experiment (arm = experiment arm, click = the
    ``metric`` of its outcomes: ``ctr`` clicked 0/1, ``conversion`` purchased 0/1, ``revenue`` the
    purchases' value), those decisions, and how many were left out as never activated."""
    from ..serving.eventlog import open_event_log

    log = open_event_log(str(db))
    try:
        logged = [d for d in log.decisions() if d.experiment_arm is not None]
        decisions = [d for d in logged if d.activate]
        outcomes = log.outcomes(decisions[0].logged_seq, decisions[-1].logged_seq) if decisions else {}
    finally:
        log.close()
    values = [metric_value(metric, outcomes.get(d.decision_id, []), str(db)) for d in decisions]
    imp = Impressions(
        arm=np.array([d.experiment_arm for d in decisions], dtype=object),
        click=np.array(values, dtype=np.float64),
        at=np.array([d.created_at for d in decisions], dtype=np.float64),
        source=str(db),
        # the service assigns arms per user: analyse per user when every decision names one
        unit=np.array([d.user_id for d in decisions], dtype=object) if decisions and all(d.user_id for d in decisions) else None,
    )
    return imp, decisions, len(logged) - len(decisions)


def metric_value(metric: str, outcomes: list, source: str = "the event log") -> float:
    """One impression's value of ``metric`` from its outcomes (feedback and events)."""
    from ..serving.rewards import CLICK, FEEDBACK, PURCHASE

    if metric == "ctr":
        return float(any(o.type == CLICK or (o.type == FEEDBACK and (o.value or 0) > 0) for o in outcomes))
    if metric == "conversion":
        return float(any(o.type == PURCHASE for o in outcomes))
    if metric == "revenue":
        purchases = [o for o in outcomes if o.type == PURCHASE]
        currencies = {o.currency for o in purchases if o.currency}
        if len(currencies) > 1:
            raise BackdropError(f"{source}: purchases in {', '.join(sorted(currencies))}: revenue needs one currency (set reward.currency)")
        return float(sum(o.value or 0.0 for o in purchases))
    raise BackdropError(f"unknown metric '{metric}'; choose ctr, conversion or revenue")


def _true_ctrs(eff: dict, served: Served) -> dict[str, dict]:
    """The population truth of each arm's serving rule (exact expectation, no clicks drawn);
    for the learning arm, the mean true click probability of what it actually served."""
    personalized = served.arm == "personalized"
    return {
        "original": {"ctr": eff["original"], "basis": "population expectation"},
        "random": {"ctr": eff["uniform"], "basis": "population expectation"},
        "fixed": {"ctr": eff["best_fixed"], "basis": "population expectation"},
        "personalized": {
            "ctr": float(served.p_true[personalized].mean()) if personalized.any() else float("nan"),
            "basis": "mean true click probability of the styles it served (it learns as it goes)",
        },
        "oracle": {"ctr": eff["oracle"], "basis": "population expectation of the best style per impression"},
    }


def analyse(db: Path, population, clicks: ClickModel, batch, served: Served, config: StudyConfig) -> dict:
    imp, decisions, _ = impressions_from_log(db)
    if len(imp) != config.impressions:
        raise BackdropError(f"{db}: {len(imp)} decisions logged for {config.impressions} impressions served")
    logged_clicks = int(imp.click.sum())
    if logged_clicks != int(served.click.sum()):
        raise BackdropError(f"{db}: {logged_clicks} clicks joined for {int(served.click.sum())} sent")
    planned = {a: config.shares[a] / sum(config.shares.values()) for a in ARMS}
    table = analyze(imp, control="original", planned_shares=planned)
    effects = clicks.effects(n=200_000)
    truth = _true_ctrs(effects["ctr"], served)
    n = {row["arm"]: row["n"] for row in table["arms"]}
    c = {row["arm"]: row["clicks"] for row in table["arms"]}

    ablations = []
    for name, t, k, what in ABLATIONS:
        cmp = compare(imp, t, k)  # per user when the log names users (the service assigns arms per user)
        lift, low, high, p = cmp["lift"], cmp["ci_low"], cmp["ci_high"], cmp["p"]
        true_lift = truth[t]["ctr"] / truth[k]["ctr"] - 1
        control_ctr = c[k] / n[k] if n[k] else float("nan")
        needed = stats.sample_size_per_arm(max(control_ctr, 1e-6), abs(true_lift)) if true_lift else None
        ablations.append(
            {
                "ablation": name,
                "treatment": t,
                "control": k,
                "isolates": what,
                "lift": lift,
                "ci_low": low,
                "ci_high": high,
                "p": p,
                "true_lift": true_lift,
                "covered": bool(low <= true_lift <= high),
                "n_treatment": n[t],
                "n_control": n[k],
                "impressions_per_arm_for_80pct_power": needed,
            }
        )

    # regret against the oracle, per arm, in serving order (the log's seq order)
    order: dict[str, list[tuple[int, float]]] = {a: [] for a in ARMS}
    by_request = {d.request_id: d for d in decisions}
    for i in range(config.impressions):
        d = by_request[f"study-{config.seed}-{i}"]
        order[d.experiment_arm].append((d.seq, served.p_oracle[i] - served.p_true[i]))
    regret = {}
    for a, rows in order.items():
        rows.sort()
        cum = np.cumsum([r for _, r in rows])
        step = max(1, len(cum) // 200)
        regret[a] = {"impressions": list(range(step, len(cum) + 1, step)), "regret": cum[step - 1 :: step].tolist()}

    return {
        "note": SIMULATED,
        "config": config.model_dump(),
        "click_model": effects,
        "table": table,
        "truth": truth,
        "ablations": ablations,
        "over_time": over_time(imp, bins=20),
        "regret": regret,
        "off_policy": off_policy_first(db, population, clicks, config, table),
    }


def served_policy(config: StudyConfig):
    """The personalised arm's policy settings, as the service is given them."""
    from ..serving.settings import PolicySettings

    return PolicySettings(name=config.policy, alpha=config.alpha, epsilon=config.epsilon, seed=config.seed)


def off_policy_first(db: Path, population, clicks: ClickModel, config: StudyConfig, table: dict) -> list[dict]:
    """What the randomised arm's log alone predicts for the fixed and the personalised arm, next to what they gave."""
    from ..bandit.features import FeatureEncoder
    from ..serving.eventlog import open_event_log
    from ..serving.offline import evaluate_log

    online = {row["arm"]: row for row in table["arms"]}
    log = open_event_log(str(db))
    try:
        rows = [
            (d, 0.0 if r is None else r)  # the service's default reward
            for batch in log.joined_batches(float("inf"))
            for d, r in batch
            if d.experiment_arm == "random"
        ]
        out = []
        if rows:
            arms = sorted({a for d, _ in rows for a in d.arms})
            colmap = {a: j for j, a in enumerate(arms)}
            reward = np.array([r for _, r in rows])
            action = np.array([colmap[d.arm] for d, _ in rows])
            pscore = np.array([d.propensity for d, _ in rows])
            best = best_styles(population, clicks)
            dist = np.zeros((len(rows), len(arms)))
            dist[np.arange(len(rows)), [colmap[best[d.item_id]] for d, _ in rows]] = 1.0
            q = shrunk_ctr_reward_model(action, reward, len(arms))(np.zeros((len(rows), 1)))
            for est in estimate(reward, action, pscore, dist, q, estimators=("ips", "snips", "dr"), n_boot=500, seed=config.seed):
                out.append({"target": "fixed", **est.to_dict()})
            encoder = FeatureEncoder(population.encoder_config(len(rows[0][0].context)))
            for rec in evaluate_log(
                log,
                lambda _d: served_policy(config).make(encoder.n_features, encoder.blocks),
                join_window_s=0,
                grace_s=0,
                now=time.time() + 1e9,
                n_boot=500,
                seed=config.seed,
                where=lambda d: d.experiment_arm == "random",
            ):
                if rec["policy"] != "logged":
                    out.append({"target": "personalized", **{k: rec[k] for k in ("estimator", "value", "ci_low", "ci_high", "n")}})
        for r in out:
            o = online[r["target"]]
            r["online_ctr"], r["online_low"], r["online_high"] = o["ctr"], o["ctr_low"], o["ctr_high"]
            r["agrees"] = bool(r["ci_low"] <= o["ctr_high"] and o["ctr_low"] <= r["ci_high"])
        return out
    finally:
        log.close()
