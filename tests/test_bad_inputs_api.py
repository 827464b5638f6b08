"""A table of bad inputs to the public API: every solver hyperparameter, the
core's limits and the package games' parameters (issue 12, section 3).

Each row must raise the named exception, before any work, with a message
that names the parameter (and, where there is one, the allowed range).
"""

import functools

from open_spiel.python import policy as policy_lib
import pyspiel
import pytest

from vsg_spiel import core
from vsg_spiel.algorithms import correlated_vpg
from vsg_spiel.algorithms import homotopy
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.algorithms import mirror_descent
from vsg_spiel.algorithms import vpg
from vsg_spiel.algorithms import zero_sum_vpg

NAN = float("nan")
INF = float("inf")
REAL = "must be a finite real number in"


@functools.lru_cache(maxsize=None)
def _game(name):
  return pyspiel.load_game(name)


def _vpg(**kwargs):
  return vpg.VPGSolver(_game("matrix_rps"), **kwargs)


def _sampled(**kwargs):
  return vpg.SampledVPGSolver(_game("matrix_rps"), **kwargs)


def _zero_sum(**kwargs):
  return zero_sum_vpg.ZeroSumVPGSolver(_game("matrix_mp"), **kwargs)


def _correlated(**kwargs):
  return correlated_vpg.CorrelatedVPGSolver(_game("matrix_cd"), **kwargs)


def _mf_bql(**kwargs):
  return mf_bayesian_q.MFBayesianQLearning(
      _game("mfg_crowd_modelling(size=3,horizon=2)"), **kwargs)


def _mirror_descent(**kwargs):
  return mirror_descent.MirrorDescent(
      _game("mfg_crowd_modelling(size=3,horizon=2)"), **kwargs)


def _markov_game(**kwargs):
  return core.MarkovGame.from_openspiel("matrix_rps", **kwargs)


def _homotopy(**fields):
  """A maxregret solve of BoS with Settings(**fields)."""
  return homotopy.solve("matrix_bos", maxregret=1e-6,
                        settings=homotopy.Settings(**fields))


def _routing(**params):
  return pyspiel.load_game("python_vsg_routing", params)


def _differential(**params):
  return pyspiel.load_game("python_vsg_differential", params)


BAD_INPUTS = [
    # VPGSolver.
    (_vpg, {"temperature": "abc"}, ValueError, f"temperature {REAL}"),
    (_vpg, {"temperature": NAN}, ValueError, f"temperature {REAL}"),
    (_vpg, {"temperature": INF}, ValueError, f"temperature {REAL}"),
    (_vpg, {"temperature": 0.0}, ValueError, r"temperature .* \(0, inf\)"),
    (_vpg, {"temperature": True}, ValueError, f"temperature {REAL}"),
    (_vpg, {"temperature": 1e-305}, ValueError,
     "temperature must be >= 1e-300"),
    (_vpg, {"step": 0.0}, ValueError, r"step .* \(0, 1\]"),
    (_vpg, {"step": 1.5}, ValueError, r"step .* \(0, 1\]"),
    (_vpg, {"step": NAN}, ValueError, f"step {REAL}"),
    (_vpg, {"step": "big"}, ValueError, f"step {REAL}"),
    (_vpg, {"opponent_model": "oracle"}, ValueError, "opponent_model"),
    (_vpg, {"policy_form": "joint"}, ValueError, "policy_form"),
    (_vpg, {"opponent_prior": "flat"}, ValueError, "opponent_prior"),
    (_vpg, {"prior_count": 0.0}, ValueError, f"prior_count {REAL}"),
    (_vpg, {"prior_count": NAN}, ValueError, f"prior_count {REAL}"),
    (_vpg, {"prior_count": INF}, ValueError, f"prior_count {REAL}"),
    (_vpg, {"reward_learning_rate": -1.0}, ValueError,
     f"reward_learning_rate {REAL}"),
    (_vpg, {"reward_learning_rate": NAN}, ValueError,
     f"reward_learning_rate {REAL}"),
    (_vpg, {"seed": -1}, ValueError, "seed must be an integer >= 0"),
    (_vpg, {"seed": 2.5}, ValueError, "seed must be an integer >= 0"),
    (_vpg, {"oracle_reward": "yes"}, ValueError, "oracle_reward"),
    # SampledVPGSolver.
    (_sampled, {"episodes_per_iteration": 2.7}, ValueError,
     "episodes_per_iteration must be an integer >= 1; got 2.7"),
    (_sampled, {"episodes_per_iteration": 0}, ValueError,
     "episodes_per_iteration must be an integer >= 1"),
    (_sampled, {"q_learning_rate": 0.0}, ValueError,
     r"q_learning_rate .* \(0, 1\]"),
    (_sampled, {"q_learning_rate": NAN}, ValueError, f"q_learning_rate {REAL}"),
    (_sampled, {"temperature": "abc"}, ValueError, f"temperature {REAL}"),
    # ZeroSumVPGSolver.
    (_zero_sum, {"temperature": "abc"}, ValueError, f"temperature {REAL}"),
    (_zero_sum, {"temperature": 1e-305}, ValueError,
     "temperature must be >= 1e-300"),
    (_zero_sum, {"step": 2.0}, ValueError, r"step .* \(0, 1\]"),
    (_zero_sum, {"opponent_prior": "empirical"}, ValueError, "opponent_prior"),
    # CorrelatedVPGSolver.
    (_correlated, {"num_signals": 2.5}, ValueError,
     "num_signals must be an integer >= 1; got 2.5"),
    (_correlated, {"num_signals": 0}, ValueError,
     "num_signals must be an integer >= 1"),
    (_correlated, {"signal_distribution": [0.5, NAN]}, ValueError,
     "signal_distribution must be 2 finite non-negative probabilities"),
    (_correlated, {"signal_distribution": [0.7, 0.7]}, ValueError,
     "signal_distribution must be 2 finite"),
    (_correlated, {"signal_distribution": [1.0]}, ValueError,
     "signal_distribution must be 2 finite"),
    (_correlated, {"signal_distribution": [1.5, -0.5]}, ValueError,
     "signal_distribution must be 2 finite"),
    (_correlated, {"signal_distribution": "uniform"}, ValueError,
     "signal_distribution must be 2"),
    (_correlated, {"signal_step": 0.0}, ValueError,
     r"signal_step .* \(0, 1\]"),
    (_correlated, {"signal_step": NAN}, ValueError, f"signal_step {REAL}"),
    (_correlated, {"initialisation": "diagonal"}, ValueError,
     "initialisation"),
    (_correlated, {"learn_signal_distribution": "yes"}, ValueError,
     "learn_signal_distribution must be True or False"),
    (_correlated, {"temperature": "abc"}, ValueError, f"temperature {REAL}"),
    # MFBayesianQLearning and MirrorDescent.
    (_mf_bql, {"temperature": "abc"}, ValueError, f"temperature {REAL}"),
    (_mf_bql, {"temperature": -1.0}, ValueError, f"temperature {REAL}"),
    (_mf_bql, {"initial_prior": "uniform"}, ValueError,
     "initial_prior must be an OpenSpiel policy"),
    (_mf_bql, {"initial_prior": policy_lib.TabularPolicy(_game("kuhn_poker"))},
     ValueError, "initial_prior must be a policy of the solver's game "
     r"mfg_crowd_modelling\(horizon=2,size=3\); got one of kuhn_poker"),
    (_mf_bql, {"initial_prior": policy_lib.UniformRandomPolicy(
        _game("mfg_crowd_modelling(size=4,horizon=2)"))},
     ValueError, "initial_prior must be a policy of the solver's game"),
    (_mf_bql, {"engine": "cached"}, ValueError,
     "engine must be a MeanFieldEngine"),
    (_mirror_descent, {"lr": NAN}, ValueError, f"lr {REAL}"),
    (_mirror_descent, {"engine": "cached"}, ValueError,
     "engine must be a MeanFieldEngine"),
    # homotopy.Settings (a NaN first step used to trace forever; a negative
    # one, or max_steps=0, to return converged=False).
    (_homotopy, {"first_step": NAN}, ValueError,
     rf"Settings.first_step {REAL} \(0, inf\); got nan"),
    (_homotopy, {"first_step": -1}, ValueError,
     rf"Settings.first_step {REAL} \(0, inf\)"),
    (_homotopy, {"max_steps": 0}, ValueError,
     "Settings.max_steps must be an integer >= 1; got 0"),
    (_homotopy, {"max_steps": 10.5}, ValueError,
     "Settings.max_steps must be an integer >= 1"),
    (_homotopy, {"max_corrector_iterations": 0}, ValueError,
     "Settings.max_corrector_iterations must be an integer >= 1"),
    (_homotopy, {"min_step": 1.0}, ValueError,
     rf"Settings.min_step {REAL} \(0, 0.3\]"),
    (_homotopy, {"max_step_growth": 0.5}, ValueError,
     rf"Settings.max_step_growth {REAL} \[1, inf\)"),
    (_homotopy, {"min_cosine": 1.0}, ValueError,
     rf"Settings.min_cosine {REAL} \[0, 1\)"),
    (_homotopy, {"corrector_tolerance": 0.0}, ValueError,
     "Settings.corrector_tolerance"),
    (_homotopy, {"tolerance": INF}, ValueError, "Settings.tolerance"),
    (_homotopy, {"max_lambda": NAN}, ValueError, "Settings.max_lambda"),
    (_homotopy, {"bifurcation_perturbation": 0.0}, ValueError,
     rf"Settings.bifurcation_perturbation {REAL} \(0, 1\)"),
    (_homotopy, {"bifurcation_jump_step": -1e-7}, ValueError,
     "Settings.bifurcation_jump_step"),
    (_homotopy, {"polish_below": "yes"}, ValueError, "Settings.polish_below"),
    (_homotopy, {"polish_distance": 2.0}, ValueError,
     rf"Settings.polish_distance {REAL} \[0, 1\]"),
    (_homotopy, {"max_distance": 0.0}, ValueError, "Settings.max_distance"),
    (_homotopy, {"target_distance": NAN}, ValueError,
     "Settings.target_distance"),
    # Schedules.
    (vpg.geometric_annealing, {"initial": 0.0, "final": 0.1, "decay": 0.5},
     ValueError, f"initial {REAL}"),
    (vpg.geometric_annealing, {"initial": 1.0, "final": 0.1, "decay": 1.5},
     ValueError, r"decay .* \(0, 1\]"),
    (zero_sum_vpg.proportional_step, {"temperature": 1.0, "ratio": 0.0},
     ValueError, f"ratio {REAL}"),
    # The core's limits.
    (_markov_game, {"max_bytes": 0}, ValueError,
     "max_bytes must be an integer >= 1"),
    (_markov_game, {"max_states": 2.5}, ValueError,
     "max_states must be an integer >= 1"),
    (_markov_game, {"discount": 1.5}, ValueError, rf"discount {REAL} \(0, 1\]"),
    # python_vsg_routing's parameters.
    (_routing, {"demand": 1e200}, ValueError,
     "lower demand, regime_scales, latency_a or latency_b"),
    (_routing, {"demand": NAN}, ValueError, f"demand {REAL}"),
    (_routing, {"demand": -1.0}, ValueError, f"demand {REAL}"),
    (_routing, {"split_levels": 0}, ValueError,
     "split_levels must be an integer >= 1"),
    (_routing, {"split_levels": 1000}, ValueError,
     "split_levels=1000 on 3 paths gives 501501 actions per player"),
    (_routing, {"num_players": 9}, ValueError,
     r"num_players must be an integer in \[2, 8\]"),
    (_routing, {"horizon": 0}, ValueError, "horizon must be an integer >= 1"),
    (_routing, {"regime_scales": "1 nan"}, ValueError, "regime_scales"),
    (_routing, {"initial_regime": 5}, ValueError, "initial_regime"),
    # python_vsg_differential's parameters.
    (_differential, {"height_1": NAN}, ValueError, f"height_1 {REAL}"),
    (_differential, {"centre_1": NAN}, ValueError, f"centre_1 {REAL}"),
    (_differential, {"offset": INF}, ValueError, f"offset {REAL}"),
    (_differential, {"offset": 1e308}, ValueError,
     "stage rewards reach 1e.308.*lower offset"),
    (_differential, {"action_high": INF}, ValueError, f"action_high {REAL}"),
    (_differential, {"scale_2": INF}, ValueError, f"scale_2 {REAL}"),
    (_differential, {"scale_1": 0.0}, ValueError, f"scale_1 {REAL}"),
    (_differential, {"num_actions": 200000}, ValueError,
     "num_actions=200000 needs a payoff table of 320000000000 bytes"),
    (_differential, {"num_actions": 1}, ValueError,
     "num_actions must be an integer >= 2"),
    (_differential, {"horizon": 0}, ValueError,
     "horizon must be an integer >= 1"),
    (_differential, {"action_low": 10.0, "action_high": -10.0}, ValueError,
     "action_low must be < action_high"),
]


def _row_id(row):
  function, kwargs = row[0], row[1]
  # Objects by type: a repr with an address would differ between workers.
  return f"{function.__name__.lstrip('_')}-" + "-".join(
      f"{key}={value!r}" if isinstance(value, (int, float, str, list))
      else f"{key}={type(value).__name__}" for key, value in kwargs.items())


def test_bad_inputs_table_has_at_least_sixty_rows():
  assert len(BAD_INPUTS) >= 60


@pytest.mark.parametrize("function, kwargs, error, message", BAD_INPUTS,
                         ids=[_row_id(row) for row in BAD_INPUTS])
def test_bad_input_is_a_clear_error(function, kwargs, error, message):
  with pytest.raises(error, match=message):
    function(**kwargs)


def test_homotopy_settings_changed_after_construction_are_checked_too():
  settings = homotopy.Settings()
  settings.first_step = NAN
  with pytest.raises(ValueError, match="Settings.first_step"):
    homotopy.solve("matrix_bos", maxregret=1e-6, settings=settings)


def test_a_nan_step_ends_the_homotopy_trace():
  # Past the checks (as a NaN from the step adaptation would): the trace
  # must stop with converged=False, not halve a NaN step forever.
  settings = homotopy.Settings()
  settings.first_step = NAN
  tracer = homotopy._Tracer(homotopy._Equations(
      core.markov_game("matrix_bos"), "soft"), settings)
  _, _, converged, message = tracer.run(None, 1e-6)
  assert not converged
  assert "nan" in message


def test_bad_temperature_names_itself_when_given_a_string():
  with pytest.raises(ValueError) as raised:
    vpg.VPGSolver(_game("matrix_rps"), temperature="abc")
  assert str(raised.value) == ("temperature must be a finite real number in "
                               "(0, inf); got 'abc' of type str")
