"""Theorem 5.8 on the distancing game: annealed VPG vs independent NPG.

    python -m vsg_spiel.eval.run_distancing --out=DIR [--iterations=400]

The distancing game of Leonardos et al. (ICLR 2022) at its published
defaults (`vsg_spiel.games.distancing`: 8 agents, 4 facilities, gamma 0.99),
from the uniform profile (or a seeded random one, `--start_seed`), with
exact planning:

  * VPG, marginal form with exact opponent models (Prop. 5.6: natural policy
    gradient on the entropy-regularised potential), step `--vpg_step`, the
    temperature annealed geometrically from `--initial_temperature` to
    `--final_temperature` by `--decay` per iteration;
  * independent natural policy gradient, unregularised (the literature's
    algorithm, alpha -> 0; Sun et al., NeurIPS 2023):
    pi_i <- pi_i exp(eta Qbar_i) / Z, Qbar_i(s, a) the exact action value of
    agent i against the others' current policies, eta = `--npg_learning_rate`.

Per iteration it records NashConv (exact, `vsg_spiel.nash_conv`), the
seconds spent in the algorithm (NashConv not counted), the expected
potential Phi^pi = E[sum_t gamma^t phi(s_t, a_t)] and, for VPG, the
regularised potential F_alpha(pi) = E[sum_t gamma^t (phi + alpha sum_i
H(pi_i(.|s_t)))] before and after each step at that step's alpha (Theorem
5.8: non-decreasing; the largest decrease is reported). It writes
DIR/distancing.json, DIR/distancing.md (iterations and seconds to
NashConv <= `--target_nash_conv`, facility loads per state at the end) and
DIR/figures/distancing.png. The machine may be shared: seconds compare the
two algorithms of one run only.

The distancing game is an exact Markov potential game only for opponents
whose mixed action is the same in both states (tests/test_distancing.py);
along the iterates it is not, so monotonicity is measured, not assumed.
"""

import os
import time

from absl import app
from absl import flags
import numpy as np

import vsg_spiel
from vsg_spiel import core
from vsg_spiel import logit
from vsg_spiel.algorithms import vpg
from vsg_spiel.eval import common
from vsg_spiel.eval import settings as settings_lib
from vsg_spiel.games import distancing

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_ITERATIONS = flags.DEFINE_integer("iterations", 400, "Iterations per run.",
                                   lower_bound=1)
_VPG_STEP = flags.DEFINE_float("vpg_step", 0.5, "VPG step beta in (0, 1].")
_INITIAL_TEMPERATURE = flags.DEFINE_float(
    "initial_temperature", 10.0, "VPG's first temperature alpha (reward "
    "units).")
_FINAL_TEMPERATURE = flags.DEFINE_float(
    "final_temperature", 1e-3, "VPG's smallest temperature.")
_DECAY = flags.DEFINE_float("decay", 0.97, "Temperature factor per iteration.")
_NPG_LEARNING_RATE = flags.DEFINE_float(
    "npg_learning_rate", 0.002, "Independent NPG's eta (per reward unit).")
_TARGET = flags.DEFINE_float("target_nash_conv", 1e-3,
                             "Report the first iteration at or below this.")
_START_SEED = flags.DEFINE_integer(
    "start_seed", None, "Start both algorithms from a random profile "
    "(Dirichlet(1) rows, this seed) instead of the uniform one: exact "
    "updates from the uniform start keep the agents identical.")


def entropy(profile):
  """sum_i H(pi_i(.|s)) per state: (S,)."""
  return sum(-np.sum(policy * np.log(np.where(policy > 0, policy, 1.0)),
                     axis=1) for policy in profile)


def potentials(mgame, phi, profile, temperatures):
  """E_mu Phi^pi and E_mu F_alpha(pi) for each alpha: (1 + len(alphas),)."""
  shape = (-1,) + (1,) * mgame.num_players
  rewards = np.stack([phi] + [phi + alpha * entropy(profile).reshape(shape)
                              for alpha in temperatures])
  return mgame.initial_distribution @ vsg_spiel.policy_values(
      mgame, profile, rewards=rewards)


def npg_step(mgame, profile, learning_rate):
  """pi_i <- pi_i exp(eta Qbar_i) / Z for every agent at once."""
  values = vsg_spiel.policy_values(mgame, profile)
  continuation = mgame.expected_next(0, values)  # (S, A_1..A_N, N)
  updated = []
  for i, policy in enumerate(profile):
    joint_q = mgame.rewards[i] + mgame.discount * continuation[..., i]
    q_values = core.expect_over_actions(joint_q, profile, keep=i)
    logits = np.log(np.maximum(policy, 1e-300)) + learning_rate * (
        q_values - q_values.max(axis=1, keepdims=True))
    logits -= logits.max(axis=1, keepdims=True)
    updated.append(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
  return updated


def run(name, mgame, phi, start, step_fn, iterations, temperature_fn=None):
  """Iterates `step_fn` (profile -> profile) from `start`, recording the
  measures."""
  profile = start
  record = {"algorithm": name, "nash_conv": [], "seconds": [],
            "potential": [], "regularised_step": []}
  elapsed = 0.0
  for iteration in range(iterations + 1):
    record["nash_conv"].append(vsg_spiel.nash_conv(mgame, profile))
    record["seconds"].append(elapsed)
    if iteration == iterations:
      record["potential"].append(float(potentials(mgame, phi, profile,
                                                  [])[0]))
      break
    alphas = [] if temperature_fn is None else [temperature_fn(iteration)]
    before = potentials(mgame, phi, profile, alphas)
    record["potential"].append(float(before[0]))
    start = time.perf_counter()
    profile = step_fn(profile)
    elapsed += time.perf_counter() - start
    if alphas:
      after = potentials(mgame, phi, profile, alphas)
      record["regularised_step"].append(float(after[1] - before[1]))
  record["loads"] = distancing.expected_loads(profile).tolist()
  record["profile"] = [policy.tolist() for policy in profile]
  hits = np.flatnonzero(np.array(record["nash_conv"]) <= _TARGET.value)
  record["iterations_to_target"] = int(hits[0]) if hits.size else None
  record["seconds_to_target"] = (record["seconds"][hits[0]] if hits.size
                                 else None)
  steps = np.array(record["regularised_step"])
  record["largest_regularised_decrease"] = (
      float(max(0.0, -steps.min())) if steps.size else None)
  return record


def vpg_run(mgame, phi, start):
  schedule = vpg.geometric_annealing(_INITIAL_TEMPERATURE.value,
                                     _FINAL_TEMPERATURE.value, _DECAY.value)
  solver = vpg.VPGSolver(mgame, temperature=schedule, step=_VPG_STEP.value,
                         opponent_model="exact", policy_form="marginal",
                         initial_profile=start)

  def step(profile):
    del profile  # the solver holds it
    solver.iteration()
    return solver.profile()
  return run("vpg_annealed", mgame, phi, start, step, _ITERATIONS.value,
             schedule)


def markdown(records):
  rows = [[r["algorithm"], r["nash_conv"][-1], r["iterations_to_target"],
           r["seconds_to_target"], r["seconds"][-1], r["potential"][-1],
           r["largest_regularised_decrease"]] for r in records]
  lines = ["# Theorem 5.8 on the distancing game", "",
           common.markdown_table(
               ["algorithm", "final NashConv",
                f"iterations to NashConv <= {_TARGET.value:g}",
                "seconds to it", "seconds total", "final potential",
                "largest decrease of F_alpha"], rows), "",
           "Facility loads (expected agents per facility A-D) at the end:", ""]
  load_rows = [[r["algorithm"], distancing.STATE_NAMES[s]] +
               [round(x, 3) for x in r["loads"][s]]
               for r in records for s in range(2)]
  lines += [common.markdown_table(["algorithm", "state", "A", "B", "C", "D"],
                                  load_rows), ""]
  return "\n".join(lines)


def plot(records, path):
  plt = common.pyplot()
  figure, axes = plt.subplots(1, 3, figsize=(14, 4))
  for r in records:
    nash_conv = np.maximum(r["nash_conv"], 1e-16)
    axes[0].semilogy(nash_conv, label=r["algorithm"])
    axes[1].semilogy(r["seconds"], nash_conv, label=r["algorithm"])
    axes[2].plot(r["potential"], label=r["algorithm"])
  axes[0].set(xlabel="iteration", ylabel="NashConv", title="NashConv")
  axes[1].set(xlabel="seconds (algorithm only)", ylabel="NashConv")
  axes[2].set(xlabel="iteration", ylabel="E Phi^pi",
              title="expected potential")
  for axis in axes:
    axis.legend()
  common.save_figure(figure, path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logit.check_step(_VPG_STEP.value, name="vpg_step")
  vpg.geometric_annealing(_INITIAL_TEMPERATURE.value,
                          _FINAL_TEMPERATURE.value, _DECAY.value)
  if not _NPG_LEARNING_RATE.value > 0:
    raise app.UsageError("npg_learning_rate must be > 0")
  try:
    settings_lib.check_output_directory(_OUT.value)
  except ValueError as error:
    raise app.UsageError(f"--out: {error}") from None
  mgame = distancing.distancing_game()
  phi = distancing.potential()
  start = (vsg_spiel.uniform_profile(mgame) if _START_SEED.value is None else
           vsg_spiel.random_profile(
               mgame, np.random.default_rng(_START_SEED.value)))
  records = [
      vpg_run(mgame, phi, start),
      run("independent_npg", mgame, phi, start,
          lambda profile: npg_step(mgame, profile, _NPG_LEARNING_RATE.value),
          _ITERATIONS.value)]
  out = _OUT.value
  settings = {flag: flags.FLAGS[flag].value for flag in (
      "iterations", "vpg_step", "initial_temperature", "final_temperature",
      "decay", "npg_learning_rate", "target_nash_conv", "start_seed")}
  common.atomic_write_json(os.path.join(out, "distancing.json"),
                           {"settings": settings, "runs": records})
  plot(records, os.path.join(out, "figures", "distancing.png"))
  common.atomic_write_text(os.path.join(out, "distancing.md"),
                           markdown(records))
  print(f"wrote {os.path.join(out, 'distancing.md')}")


if __name__ == "__main__":
  app.run(main)
