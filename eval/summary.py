"""The report's first screen: one line per claim of the paper.

Each claim reads one section's results (the `results` entry the report
writes to results.json: {"settings", "results", "failed"}) and returns a
verdict and the number behind it, computed from the results; nothing here
is a hard-coded outcome. Verdicts:

  * "holds": every case measured agrees with the claim;
  * "partly": some cases do, some do not (the line says how many);
  * "fails": no case does;
  * "not run": the section was not selected;
  * "no result": the section ran but produced nothing to judge (its cells
    failed or its summary did; the section lists the reasons).

The claims and the sections they link to are in `CLAIMS`; `markdown` gives
the summary table, each claim linking to its section's anchor
(`anchor(section)`).
"""

import numpy as np

from vsg_spiel.eval import common

HOLDS, PARTLY, FAILS = "holds", "partly", "fails"
NOT_RUN, NO_RESULT = "not run", "no result"
# A correlated-equilibrium device counts as a CE at this ce_dist (payoff
# units; the LP and JPSRO reach 0 to machine precision).
CE_TOLERANCE = 1e-6
# F_alpha counts as non-decreasing when no step lowers it by more (reward
# units; rounding of the exact values is ~1e-12).
MONOTONE_TOLERANCE = 1e-9


class NoResult(Exception):
  """A section ran but holds nothing the claim can be judged on."""


def anchor(section):
  """The HTML anchor of a section's heading in report.md."""
  return f"section-{section}"


def count_verdict(hits, total):
  """holds when every case is a hit, fails when none is, else partly."""
  if total == 0:
    raise NoResult("no case completed")
  return HOLDS if hits == total else FAILS if hits == 0 else PARTLY


def _fmt(value):
  return f"{value:.3g}"


# ----------------------------------------------------------------------------
# One function per claim: section results -> (verdict, text).

def theorem_4_2(results):
  """Theorem 4.2: the ELBO gap of the ELBO solution is at most epsilon. The
  line also counts the true deviation gains above epsilon and the rows
  whose profile is certified a fixed point (residual within tolerance)."""
  rows = results["rows"]
  if not rows:
    raise NoResult("no row completed")
  total = len(rows)
  within = sum(not row["elbo_exceeds"] for row in rows)
  gains_above = sum(row["gain_exceeds"] for row in rows)
  worst = max(row["max_elbo_gap"] / row["epsilon"] for row in rows)
  text = (f"ELBO gap <= epsilon in {within}/{total} rows (worst gap / "
          f"epsilon {_fmt(worst)}); the true deviation gain exceeds epsilon "
          f"in {gains_above}/{total} rows")
  certified = [row for row in rows if "residual" in row]
  if certified:
    text += (f"; {sum(row['converged'] for row in certified)}/"
             f"{len(certified)} rows certified fixed points (residual <= "
             f"{_fmt(certified[0]['residual_tolerance'])})")
  return count_verdict(within, total), text


def theorem_5_8(results):
  """Theorem 5.8: the regularised potential is non-decreasing along VPG."""
  runs = results["potential"]
  if not runs:
    raise NoResult("no potential run completed")
  monotone = sum(run["objective_monotone"] for run in runs)
  largest = max(run["largest_decrease"] for run in runs)
  return count_verdict(monotone, len(runs)), (
      f"F non-decreasing at {monotone}/{len(runs)} step sizes (largest "
      f"decrease {_fmt(largest)})")


def _seed_count(entry, name):
  seeds = len(entry["seeds"])
  return int(round(entry[name] * seeds)), seeds


def figure_2a(results):
  """Figure 2a: MAI's deterministic play ends at the global optimum of the
  differential game; the baselines' does not."""
  summary = results.get("differential")
  if not summary or "mai" not in summary:
    raise NoResult("no MAI run on the differential game completed")
  hits, seeds = _seed_count(summary["mai"], "global_optimum_fraction")
  others = {name: _seed_count(entry, "global_optimum_fraction")
            for name, entry in summary.items() if name != "mai"}
  best_other = max((k / n for k, n in others.values()), default=0.0)
  if hits == seeds and hits / seeds > best_other:
    verdict = HOLDS
  elif hits == 0 or hits / seeds <= best_other:
    verdict = FAILS
  else:
    verdict = PARTLY
  return verdict, (f"MAI at the global optimum in {hits}/{seeds} seeds; " +
                   ", ".join(f"{name.upper()} {k}/{n}"
                             for name, (k, n) in others.items()))


def _interval(entry):
  """" [low, high]" of a spread's bootstrap interval, or its note."""
  interval = entry.get("interval")
  if not interval:
    return ""
  if interval.get("low") is None:
    return f" ({interval['note']})"
  return f" [{_fmt(interval['low'])}, {_fmt(interval['high'])}]"


def figure_2b(results):
  """Figure 2b: on the routing game MAI's policies are the least exploitable
  (mean NashConv on the grid across seeds)."""
  summary = results.get("routing")
  if not summary or "mai" not in summary:
    raise NoResult("no MAI run on the routing game completed")
  means = {name: entry["nash_conv"]["mean"]
           for name, entry in summary.items()}
  best = min((name for name in means if name != "mai"), key=means.get,
             default=None)
  verdict = HOLDS if best is None or means["mai"] < means[best] else FAILS
  text = (f"MAI's NashConv {_fmt(means['mai'])}"
          f"{_interval(summary['mai']['nash_conv'])}")
  if best is not None:
    text += (f"; lowest baseline {best.upper()} {_fmt(means[best])}"
             f"{_interval(summary[best]['nash_conv'])}")
  if "[" in text:
    text += " (mean [95% bootstrap interval] across seeds)"
  return verdict, text


def mean_field(results):
  """MF-BQL reaches a lower exploitability than every OpenSpiel mean-field
  solver at the same wall time (the shortest run's)."""
  games = [game for game in results["games"]
           if "mf_bql" in game.get("runs", {}) and "same_seconds" in game]
  if not games:
    raise NoResult("no game with an MF-BQL run")
  wins, ratios = 0, []
  for game in games:
    values = game["same_seconds"]["exploitability"]
    ours = values["mf_bql"]
    others = [value for name, value in values.items()
              if name != "mf_bql" and value is not None]
    if not others:
      continue
    wins += ours is not None and ours < min(others)
    if ours:
      ratios.append(min(others) / ours)
  text = (f"MF-BQL below the best OpenSpiel solver at equal wall time in "
          f"{wins}/{len(games)} games")
  if ratios:
    text += (f" (best OpenSpiel / MF-BQL exploitability: median "
             f"{_fmt(float(np.median(ratios)))}, range "
             f"{_fmt(min(ratios))}-{_fmt(max(ratios))})")
  return count_verdict(wins, len(games)), text


def nash(results):
  """VPG (annealed) reaches NashConv <= threshold x payoff range before the
  fastest OpenSpiel baseline (seed 0). A game whose common start (the
  uniform profile) is already within the threshold measures no speed: it is
  named, not counted."""
  games = [game for game in results["games"]
           if game.get("start_nash_conv", np.inf) >
           game.get("threshold_nash_conv", 0.0)]
  at_start = [game["game"] for game in results["games"]
              if game not in games]
  if not games:
    raise NoResult("no game completed" if not at_start else
                   "every game starts within the threshold")
  parts, wins = [], 0
  for game in games:
    ratio = game["speedup"]
    name = game["game"].split("(")[0]  # matrix_bos, python_vsg_routing
    if ratio["ratio"] is not None:
      wins += ratio["ratio"] > 1
      parts.append(f"{name} {_fmt(ratio['ratio'])}")
    elif ratio["ratio_lower_bound"] is not None:
      wins += ratio["ratio_lower_bound"] > 1
      parts.append(f"{name} > {_fmt(ratio['ratio_lower_bound'])}")
    else:
      parts.append(name + (" not reached"
                           if ratio["vpg_annealed_seconds"] is None
                           else " no baseline ran"))
  text = (f"vpg_annealed faster than the fastest OpenSpiel baseline in "
          f"{wins}/{len(games)} games (speed-ups " + ", ".join(parts) + ")")
  if at_start:
    text += (f"; not counted, the uniform start already within the "
             f"threshold: {', '.join(at_start)}")
  return count_verdict(wins, len(games)), text


def correlated(results):
  """Section 5.3: a public-signal VPG device is a correlated equilibrium."""
  games = results["correlated"]
  if not games:
    raise NoResult("no game completed")
  found, welfare = 0, 0
  for game in games:
    devices = [row for row in game["rows"] if row["method"] == "vpg"]
    equilibria = [row for row in devices if row["ce_dist"] <= CE_TOLERANCE]
    found += bool(equilibria)
    best = game["max_welfare_ce"]["welfare"]
    welfare += any(row["welfare"] >= best - CE_TOLERANCE
                   for row in equilibria)
  return count_verdict(found, len(games)), (
      f"a VPG device is a CE (ce_dist <= {CE_TOLERANCE:g}) in "
      f"{found}/{len(games)} games, with the max-welfare CE's welfare in "
      f"{welfare}/{len(games)}")


def zero_sum(results):
  """Section 5.4: zero-sum VPG reaches the exploitability threshold."""
  games = [game for game in results["zero_sum"]
           if "zero_sum_vpg" in game["algorithms"]]
  if not games:
    raise NoResult("no zero_sum_vpg run completed")
  reached, fastest, worst = 0, 0, 0.0
  for game in games:
    runs = {name: run for name, run in game["algorithms"].items()
            if "time_to_threshold" in run}
    ours = runs.get("zero_sum_vpg", {})
    if ours.get("time_to_threshold") is not None:
      reached += 1
      times = [run["time_to_threshold"] for run in runs.values()
               if run["time_to_threshold"] is not None]
      fastest += ours["time_to_threshold"] <= min(times)
    worst = max(worst, ours.get("final_nash_conv", np.nan) / 2)
  return count_verdict(reached, len(games)), (
      f"zero_sum_vpg reaches the threshold in {reached}/{len(games)} games, "
      f"first of the algorithms in {fastest}; worst final exploitability "
      f"{_fmt(worst)}")


def distancing(results):
  """Theorem 5.8 on the distancing game: annealed VPG reaches NashConv <=
  target; holds when it also ends at the published loads (no facility above
  N/2 agents in the safe state, N/4 in the distancing state) with F_alpha
  never decreasing (by more than MONOTONE_TOLERANCE), partly when it reaches
  the target otherwise."""
  runs = {run["algorithm"]: run for run in results["runs"]}
  if "vpg_annealed" not in runs:
    raise NoResult("no VPG run completed")
  def outcome(run):
    iterations = run["iterations_to_target"]
    reached = ("not reached" if iterations is None else
               f"{iterations} iterations")
    loads = "published" if run["published_loads"] else "other"
    return f"{reached}, {loads} loads"
  ours = runs["vpg_annealed"]
  text = (f"to NashConv <= {results['target_nash_conv']:g}: vpg_annealed "
          f"{outcome(ours)}")
  if "independent_npg" in runs:
    text += f"; independent NPG {outcome(runs['independent_npg'])}"
  text += (f"; largest decrease of F_alpha along VPG "
           f"{_fmt(ours['largest_regularised_decrease'] or 0.0)}")
  monotone = (ours["largest_regularised_decrease"] or 0.0) <= (
      MONOTONE_TOLERANCE)
  if ours["iterations_to_target"] is None:
    verdict = FAILS
  else:
    verdict = HOLDS if ours["published_loads"] and monotone else PARTLY
  return verdict, text


# (claim, section, function of the section's results).
CLAIMS = (
    ("Theorem 4.2: ELBO gap <= epsilon", "epsilon", theorem_4_2),
    ("Theorem 5.8: potential ascent (routing)", "epsilon", theorem_5_8),
    ("VPG vs the best OpenSpiel baseline (Nash)", "nash", nash),
    ("Figure 2a: MAI at the global optimum", "mai", figure_2a),
    ("Figure 2b: MAI's NashConv vs baselines", "mai", figure_2b),
    ("MF-BQL vs the best OpenSpiel MFG solver", "mfg", mean_field),
    ("Correlated equilibria (Sec. 5.3)", "equilibria", correlated),
    ("Zero-sum games (Sec. 5.4)", "equilibria", zero_sum),
    ("Distancing game (Thm. 5.8, Leonardos et al.)", "distancing",
     distancing),
)


def verdicts(report_results):
  """[(claim, section, verdict, text)] for every claim whose section exists
  in this report version, from results.json's content."""
  lines = []
  for claim, section, function in CLAIMS:
    entry = report_results.get(section)
    if entry is None:
      lines.append((claim, section, NOT_RUN, "section not selected"))
      continue
    if entry.get("results") is None:
      lines.append((claim, section, NO_RESULT,
                    "the section could not be summarised"))
      continue
    try:
      verdict, text = function(entry["results"])
    except NoResult as reason:
      verdict, text = NO_RESULT, str(reason)
    if entry.get("failed"):
      text += f" ({len(entry['failed'])} failures listed in the section)"
    lines.append((claim, section, verdict, text))
  return lines


def markdown(report_results, sections):
  """The summary table; `sections` are the report's sections, in order
  (claims of sections unknown to this report are left out)."""
  rows = [[f"[{claim}](#{anchor(section)})", f"**{verdict}**", text]
          for claim, section, verdict, text in verdicts(report_results)
          if section in sections]
  return ("## Summary\n\n"
          "One line per claim of the paper, its verdict computed from this "
          "run's results (holds / partly / fails; not run; no result), and "
          "the number behind it; each links to its section.\n\n" +
          common.markdown_table(["claim", "verdict", "measured"], rows) +
          "\n")
