"""The distancing game: tensors, the potential property, and bad parameters."""

import itertools

import numpy as np
import pytest

import vsg_spiel
from vsg_spiel.games import distancing


@pytest.fixture(scope="module")
def published():
  """The published setting: 8 agents, w = (1, 2, 4, 6), gamma = 0.99."""
  return distancing.distancing_game()


def brute_force(num_agents, weights, penalty, state, joint):
  """Rewards and next state of one joint action, counted by hand."""
  loads = [sum(1 for a in joint if a == k) for k in range(len(weights))]
  rewards = [weights[a] * loads[a] - penalty * (state == 1) for a in joint]
  threshold = num_agents / 2 if state == 0 else num_agents / 4
  return rewards, int(max(loads) > threshold)


def test_published_defaults(published):
  assert (published.num_players, published.num_states) == (8, 2)
  assert published.num_actions == (4,) * 8
  assert published.num_joint_actions == 65536
  assert published.discount == 0.99 and published.stationary
  np.testing.assert_array_equal(published.initial_distribution, [0.5, 0.5])


@pytest.mark.parametrize("num_agents, weights, penalty", [
    (8, (1, 2, 4, 6), 100.0),
    (3, (1.5, 2.5), 7.0),
    (5, (2, 1, 3), 0.0),
])
def test_rewards_and_transitions_equal_a_hand_count(num_agents, weights,
                                                    penalty):
  mgame = distancing.distancing_game(num_agents, weights, penalty, 0.9)
  rng = np.random.default_rng(num_agents)
  dense = mgame.transitions.toarray().reshape(
      (2, mgame.num_joint_actions, 2))
  joints = (list(itertools.product(range(len(weights)), repeat=num_agents))
            if len(weights)**num_agents <= 300 else
            [tuple(rng.integers(len(weights), size=num_agents))
             for _ in range(300)])
  for state in (0, 1):
    for joint in joints:
      rewards, next_state = brute_force(num_agents, weights, penalty, state,
                                        joint)
      np.testing.assert_array_equal(mgame.rewards[(slice(None), state) +
                                                  joint], rewards)
      row = np.ravel_multi_index(joint, mgame.num_actions)
      assert dense[state, row].tolist() == [1.0 - next_state, next_state]


def test_every_stage_game_has_rosenthals_potential(published):
  """r_i - phi does not depend on agent i's own action, at every state and
  joint action: a unilateral deviation changes r_i exactly as phi."""
  phi = distancing.potential()
  for player in range(8):
    difference = published.rewards[player] - phi  # (2, 4, ..., 4)
    assert np.ptp(difference, axis=1 + player).max() == 0.0
  # and phi is not a trivial potential
  assert np.ptp(phi[0]) > 100


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unilateral_deviation_changes_value_as_the_potential(published, seed):
  """Phi^pi = E sum gamma^t phi(s_t, a_t): with the others playing the same
  mixed action in both states, any (state-dependent) deviation of agent i
  changes V_i exactly as it changes Phi^pi, in both states."""
  rng = np.random.default_rng(seed)
  phi = distancing.potential()[None]
  profile = [np.tile(rng.dirichlet(np.ones(4)), (2, 1)) for _ in range(8)]
  for player in rng.choice(8, size=3, replace=False):
    deviation = list(profile)
    deviation[player] = rng.dirichlet(np.ones(4), size=2)
    before = vsg_spiel.policy_values(published, profile)[:, player]
    after = vsg_spiel.policy_values(published, deviation)[:, player]
    potential_before = vsg_spiel.policy_values(published, profile, phi)[:, 0]
    potential_after = vsg_spiel.policy_values(published, deviation, phi)[:, 0]
    scale = np.abs(potential_before).max()
    assert np.abs(after - before).max() > 1e-3 * scale  # a real change
    # Equal to rounding: the solves lose ~log10(1 / (1 - gamma)) digits.
    np.testing.assert_allclose(after - before,
                               potential_after - potential_before, rtol=0,
                               atol=1e-11 * scale)


def test_potential_identity_fails_with_state_dependent_opponents(published):
  """The counter-case, measured: when the others' mixed actions differ
  between states, agent i's deviation moves the state distribution under a
  state-dependent term and V_i and Phi^pi change by different amounts."""
  rng = np.random.default_rng(0)
  phi = distancing.potential()[None]
  profile = [rng.dirichlet(np.ones(4), size=2) for _ in range(8)]
  deviation = list(profile)
  deviation[3] = rng.dirichlet(np.ones(4), size=2)
  change = (vsg_spiel.policy_values(published, deviation)[:, 3] -
            vsg_spiel.policy_values(published, profile)[:, 3])
  potential_change = (vsg_spiel.policy_values(published, deviation, phi) -
                      vsg_spiel.policy_values(published, profile, phi))[:, 0]
  assert np.abs(change - potential_change).max() > 1.0


def test_uniform_profile_loads_and_nash_conv(published):
  uniform = vsg_spiel.uniform_profile(published)
  np.testing.assert_allclose(distancing.expected_loads(uniform), 2.0)
  # Under uniform play every agent gains by moving to facility D (w = 6).
  gains = vsg_spiel.deviation_gains(published, uniform)
  assert np.all(gains > 0) and np.ptp(gains) < 1e-9 * gains.max()
  _, responses = vsg_spiel.best_response_values(published, uniform)
  assert all(response[0] == 3 for response in responses)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_agents": 0}, "num_agents must be an integer >= 1"),
    ({"num_agents": 2.5}, "num_agents must be an integer"),
    ({"num_agents": True}, "num_agents must be an integer"),
    ({"weights": []}, "weights must be a non-empty list"),
    ({"weights": [1, np.nan]}, "weights must be a non-empty list"),
    ({"num_agents": 12}, "joint actions per state exceeds"),
    ({"penalty": np.inf}, "penalty must be finite"),
    ({"discount": 1.0}, r"discount of a stationary game .* \[0, 1\)"),
    ({"initial_distribution": (1.0,)}, "initial_distribution must give"),
    ({"initial_distribution": (0.7, 0.7)}, "sums to 1.4"),
])
def test_bad_parameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    distancing.distancing_game(**kwargs)


def test_theorem_58_binary_writes_its_outputs(tmp_path):
  """eval/run_distancing, two iterations: outputs, and the numbers that can
  be checked independently (the uniform start and the loads)."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  environment = dict(os.environ, PYTHONPATH=repository)
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.run_distancing",
       f"--out={tmp_path}", "--iterations=2"], capture_output=True,
      text=True, check=False, env=environment, timeout=300)
  assert result.returncode == 0, result.stderr
  data = json.loads((tmp_path / "distancing.json").read_text())
  mgame = distancing.distancing_game()
  uniform = vsg_spiel.nash_conv(mgame, vsg_spiel.uniform_profile(mgame))
  for record in data["runs"]:
    assert len(record["nash_conv"]) == 3
    assert record["nash_conv"][0] == pytest.approx(uniform, rel=1e-12)
    profile = [np.array(policy) for policy in record["profile"]]
    np.testing.assert_allclose(record["loads"],
                               distancing.expected_loads(profile))
    assert record["nash_conv"][-1] == pytest.approx(
        vsg_spiel.nash_conv(mgame, profile), rel=1e-12)
  assert len(data["runs"][0]["regularised_step"]) == 2
  assert (tmp_path / "figures" / "distancing.png").stat().st_size > 0
  assert "facility" in (tmp_path / "distancing.md").read_text().lower()


@pytest.mark.parametrize("out, message", [
    ("", "--out: empty"), ("/dev/null", "is not a directory")])
def test_theorem_58_binary_rejects_a_bad_out_before_work(out, message,
                                                          tmp_path):
  """An empty --out once wrote into the current directory."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.run_distancing", f"--out={out}",
       "--iterations=2"], capture_output=True, text=True, check=False,
      cwd=tmp_path, timeout=300)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-2000:]
  assert not list(tmp_path.iterdir())
