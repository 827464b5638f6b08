"""Stationary discounted games against sgamesolver 1.0.2 (the peer library).

sgamesolver (Eibelshaeuser & Poensgen) solves discounted stochastic games by
homotopy continuation. Its conventions, read from `sgamesolver.sgame` and
`sgamesolver.homotopy._qre` and checked numerically below:

  * `SGame.u[s, i, a_1, ..., a_N]` are raw stage payoffs (no normalisation),
    `SGame.phi[s, a_1, ..., a_N, s']` the transition probabilities and
    `SGame.delta[i]` a discount per player (random games share one, which
    `MarkovGame.from_arrays` needs). A state may give a player fewer
    actions: `SGame.action_mask[s, i, a]`, our legal masks.
  * Values are discounted sums, not normalised by (1 - delta):
    `SGame.get_values(sigma)` solves V_i = u_i^sigma + delta_i phi^sigma V_i,
    as `vsg_spiel.policy_values` does for every state.
  * `homotopy.QRE` traces the Markov logit QRE from lambda = 0 (the centroid
    profile): sigma_i(a | s) is proportional to exp(lambda Q_i(s, a)), Q_i the
    expected stage payoff plus delta times the on-policy value V_i of the next
    state (no entropy term), lambda multiplying the raw payoffs: scaling the
    payoffs by c is the same as scaling lambda by c. So its lambda is our
    1 / temperature (alpha) of the "markov_logit" definition, with rewards
    unscaled. `target_lambda=inf` follows the branch to its Nash endpoint.
  * `SGame.check_equilibrium(sigma)` is the largest one-shot deviation gain
    per state and player, not the best-response gain: by the one-shot
    deviation principle it is zero exactly when ours is, and per player
    one-shot(s) <= ours(s) <= max_s' one-shot(s') / (1 - delta).

sgamesolver 1.0.2 still uses `np.NaN` (removed in NumPy 2): the fixture below
restores the alias for the duration of each test.
"""

import numpy as np
import pytest

import vsg_spiel

sgamesolver = pytest.importorskip("sgamesolver")

# (states, players, actions, delta, seed): 2-3 players, 2-16 states, 2-4
# actions, several seeds; (2, 4) draws 2 to 4 actions per state and player.
RANDOM_GAMES = [
    (2, 2, 2, 0.9, 0),
    (4, 2, 3, 0.95, 1),
    (16, 2, 2, 0.9, 2),
    (3, 3, 2, 0.9, 3),
    (5, 3, 3, 0.8, 4),
    (8, 2, (2, 4), 0.95, 5),
    (3, 3, (2, 4), 0.9, 6),
]
LAMBDAS = (0.5, 2.0, 10.0)


@pytest.fixture(autouse=True)
def numpy_nan_alias(monkeypatch):
  monkeypatch.setattr(np, "NaN", np.nan, raising=False)


def markov_game_of(sgame):
  """`MarkovGame.from_arrays` of an `sgamesolver.SGame` (uniform start)."""
  if not np.all(sgame.delta == sgame.delta[0]):
    raise ValueError(f"the players' discounts differ: {sgame.delta}")
  return vsg_spiel.MarkovGame.from_arrays(
      rewards=np.moveaxis(sgame.u, 1, 0),
      transitions=sgame.phi,
      discount=float(sgame.delta[0]),
      initial_distribution=np.full(sgame.num_states, 1 / sgame.num_states),
      legal=[sgame.action_mask[:, player]
             for player in range(sgame.num_players)])


def profile_of(sgame, strategies):
  """sgamesolver's (S, N, A_max) strategies (NaN padded) as our profile,
  rows renormalised (its log-strategies sum to 1 only to its tolerance)."""
  strategies = np.nan_to_num(strategies)
  strategies /= strategies.sum(axis=-1, keepdims=True)
  return [strategies[:, player] for player in range(sgame.num_players)]


def random_game(states, players, actions, delta, seed):
  actions = list(actions) if isinstance(actions, tuple) else actions
  return sgamesolver.SGame.random_game(states, players, actions, delta, seed)


def solve_qre(sgame, target_lambda):
  """sgamesolver's QRE at `target_lambda`: the corrector and |lambda -
  target| tightened to 1e-12; at inf (its Nash endpoint) its stopping rule
  (strategies moving less than this per unit of lambda) at 1e-9."""
  qre = sgamesolver.homotopy.QRE(sgame)
  qre.solver_setup(target_lambda=target_lambda)
  qre.solver.set_parameters(verbose=0)
  if np.isfinite(target_lambda):
    qre.solver.set_parameters(corrector_tol=1e-12, convergence_tol=1e-12)
  else:
    qre.solver.set_parameters(convergence_tol=1e-9)
  qre.solve()
  assert qre.equilibrium is not None, "sgamesolver's QRE did not converge"
  return qre.equilibrium


def markov_logit_residual(mgame, profile, lam):
  """max |sigma_i - softmax(lambda Q_i)|, Q_i from our exact policy values."""
  values = vsg_spiel.policy_values(mgame, profile)
  continuation = mgame.transitions @ values  # (S * J, N)
  residual = 0.0
  for player in range(mgame.num_players):
    joint_q = (mgame.rewards[player] + mgame.discount *
               continuation[:, player].reshape(mgame.rewards.shape[1:]))
    q_values = vsg_spiel.core.expect_over_actions(joint_q, profile,
                                                  keep=player)
    logits = np.where(mgame.legal_mask[player], lam * q_values, -np.inf)
    logit = np.exp(logits - logits.max(axis=1, keepdims=True))
    logit /= logit.sum(axis=1, keepdims=True)
    residual = max(residual, np.abs(logit - profile[player]).max())
  return residual


@pytest.mark.parametrize("game", RANDOM_GAMES)
def test_arrays_and_policy_values_match_sgamesolver(game):
  sgame = random_game(*game)
  mgame = markov_game_of(sgame)
  assert mgame.num_states == sgame.num_states
  for seed in range(3):
    strategies = sgame.random_strategy(seed=seed)
    profile = profile_of(sgame, strategies)
    np.testing.assert_allclose(vsg_spiel.policy_values(mgame, profile),
                               sgame.get_values(strategies), rtol=0,
                               atol=1e-8)


@pytest.mark.parametrize("game", RANDOM_GAMES)
def test_best_responses_bracket_sgamesolver_one_shot_gains(game):
  sgame = random_game(*game)
  mgame = markov_game_of(sgame)
  strategies = sgame.random_strategy(seed=7)
  profile = profile_of(sgame, strategies)
  gains = (vsg_spiel.best_response_values(mgame, profile)[0] -
           vsg_spiel.policy_values(mgame, profile))
  one_shot = sgame.check_equilibrium(strategies)
  assert np.all(gains >= one_shot - 1e-10)
  assert np.all(gains <= one_shot.max(axis=0) / (1 - mgame.discount) + 1e-10)
  assert one_shot.max() > 1e-3  # a random profile is far from equilibrium


@pytest.mark.parametrize("lam", LAMBDAS)
@pytest.mark.parametrize("game", RANDOM_GAMES)
def test_sgamesolver_qre_satisfies_our_markov_logit_equations(game, lam):
  sgame = random_game(*game)
  mgame = markov_game_of(sgame)
  equilibrium = solve_qre(sgame, lam)
  profile = profile_of(sgame, equilibrium.strategies)
  np.testing.assert_allclose(vsg_spiel.policy_values(mgame, profile),
                             equilibrium.values, rtol=0, atol=1e-8)
  assert markov_logit_residual(mgame, profile, lam) < 1e-9
  # and not those of a different lambda
  assert markov_logit_residual(mgame, profile, 1.1 * lam) > 1e-4


@pytest.mark.parametrize("game", RANDOM_GAMES)
def test_sgamesolver_nash_endpoint_has_small_deviation_gains(game):
  sgame = random_game(*game)
  mgame = markov_game_of(sgame)
  equilibrium = solve_qre(sgame, np.inf)
  profile = profile_of(sgame, equilibrium.strategies)
  gains = (vsg_spiel.best_response_values(mgame, profile)[0] -
           vsg_spiel.policy_values(mgame, profile))
  payoff_range = np.ptp(sgame.u[sgame.u_mask]) / (1 - mgame.discount)
  # Its endpoint is an approximate equilibrium (regret ~ 1/lambda on mixed
  # equilibria): measured <= 3.7e-6 x payoff range on these games (<= 3.2e-5
  # at its default stopping rule 1e-7).
  assert gains.max() <= 1e-5 * payoff_range
  one_shot = sgame.check_equilibrium(equilibrium.strategies)
  assert np.all(gains >= one_shot - 1e-10)
  assert np.all(gains <= one_shot.max(axis=0) / (1 - mgame.discount) + 1e-10)


# ----------------------------------------------------------------------------
# Our path-following solver (vsg_spiel.algorithms.homotopy) against it.


def _homotopy():
  return pytest.importorskip("vsg_spiel.algorithms.homotopy")


@pytest.mark.parametrize("lam", LAMBDAS)
@pytest.mark.parametrize("game", RANDOM_GAMES)
def test_our_markov_logit_qre_equals_sgamesolver_qre(game, lam):
  """Same lambda, same branch: equal to 1e-6 (measured <= 1.1e-13)."""
  homotopy = _homotopy()
  sgame = random_game(*game)
  mgame = markov_game_of(sgame)
  ours = homotopy.solve(mgame, temperature=1 / lam,
                        definition="markov_logit")
  assert ours.converged, ours.message
  theirs = profile_of(sgame, solve_qre(sgame, lam).strategies)
  for mine, other in zip(ours.profile, theirs):
    np.testing.assert_allclose(mine, other, rtol=0, atol=1e-6)
  assert markov_logit_residual(mgame, ours.profile, lam) < 1e-9


@pytest.mark.parametrize("game", [RANDOM_GAMES[2]])
def test_our_nash_endpoint_has_regret_below_1e6_of_the_payoff_range(game):
  """The branch's Nash endpoint: max regret <= 1e-6 x payoff range (the
  discounted range ptp(u) / (1 - delta)); it is the equilibrium sgamesolver's
  endpoint approximates (difference measured 1.4e-5 at its 1e-9 rule)."""
  homotopy = _homotopy()
  sgame = random_game(*game)
  mgame = markov_game_of(sgame)
  payoff_range = np.ptp(sgame.u[sgame.u_mask]) / (1 - mgame.discount)
  ours = homotopy.solve(mgame, maxregret=1e-6 * payoff_range,
                        definition="markov_logit")
  assert ours.converged, ours.message
  assert np.max(vsg_spiel.deviation_gains(mgame, ours.profile)) <= (
      1e-6 * payoff_range)
  state_gains = (vsg_spiel.best_response_values(mgame, ours.profile)[0] -
                 vsg_spiel.policy_values(mgame, ours.profile))
  assert state_gains.max() <= 1e-6 * payoff_range
  theirs = profile_of(sgame, solve_qre(sgame, np.inf).strategies)
  assert max(np.abs(mine - other).max()
             for mine, other in zip(ours.profile, theirs)) < 1e-4
