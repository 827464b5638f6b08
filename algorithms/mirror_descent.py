"""OpenSpiel's mean-field mirror descent on the tabular engine's arrays.

The algorithm of `open_spiel/python/mfg/algorithms/mirror_descent.py`
(Perolat et al., "Scaling up mean field games with online mirror descent"),
iterate for iterate, with every state evaluated by `vsg_spiel.mfg_engine`
layer by layer instead of a recursive walk: the peer that MF-BQL is measured
against, and the check that the engine reproduces OpenSpiel's walks.
"""


import numpy as np

from vsg_spiel import logit
from vsg_spiel import mfg_engine
from vsg_spiel import parameters


class MirrorDescent(mfg_engine.EngineSolver):
  """OpenSpiel's MirrorDescent on the engine's arrays, iterate for iterate.

  open_spiel/python/mfg/algorithms/mirror_descent.py: each iteration
  evaluates the current policy against its own flow, adds lr * V(s) to a
  cumulative value y(s) of every state, projects
    pi(a|s) = softmax_a( y(child(s, a)) )
  (ProjectedPolicy's logits r(s) + y(child) differ by the action-independent
  r(s)) and propagates the new flow.

  One detail is OpenSpiel's, reproduced so that iterates agree: from the
  second iteration on, the policy it evaluates reads the cumulative values
  while its depth-first walk is updating them. At a decision state s, a child
  the walk finished before reaching s already holds y + lr * V; the others
  still hold y. `iteration()` evaluates exactly that policy.
  """

  def __init__(self, game, lr: float = 0.01,
               engine: mfg_engine.MeanFieldEngine | None = None):
    """Args: game, a mean-field game; lr > 0, OpenSpiel's learning rate;
    engine, a `MeanFieldEngine` of `game` to reuse (built if None).

    Raises:
      ValueError: lr is not a finite number > 0, engine is not a
        MeanFieldEngine or was built for another game.
    """
    self._lr = parameters.check_real("lr", lr, 0.0, low_open=True)
    super().__init__(game, engine)
    self._cumulative_value = np.zeros(self._engine.num_nodes + 1)
    self._walk = None  # (structure, lr, _walk_steps), reused while they last
    self._mean_field = self._engine.mean_field(self._engine.uniform_policy)

  def _grow_cumulative_value(self):
    """Zero cumulative value for states found since the last iteration."""
    missing = self._engine.num_nodes + 1 - len(self._cumulative_value)
    if missing > 0:
      self._cumulative_value = np.concatenate(
          [self._cumulative_value, np.zeros(missing)])

  def _projected_policy(self, rows):
    """softmax_a of the cumulative value of child(s, a) (a PolicyFunction)."""
    self._grow_cumulative_value()
    # take: rows of a 2-d array several times faster than indexing.
    children = self._engine.children_by_action.take(rows, axis=0)
    return logit.softmax(self._cumulative_value.take(children),
                         self._engine.legal.take(rows, axis=0), axis=1)

  def _evaluate(self, learning_rate, first):
    """V of the policy OpenSpiel's depth-first walk evaluates (see above);
    `first`: in the first iteration, the current policy's.

    That policy differs from the current one, softmax_a y(child(s, a)), only
    at the rows with two or more legal actions one of whose children the
    walk finished before s: everywhere else its value is the current
    policy's (one triangular solve on small games, as in the routing games,
    where no row is of that kind)."""
    mean_field = self._mean_field
    steps = (None if first else
             self._walk_steps(mean_field.structure, learning_rate))
    if steps is None:
      return self._engine.policy_value(mean_field)
    values = np.zeros(len(mean_field.rewards))
    cumulative, policy = self._cumulative_value, mean_field.policy
    steps = iter(steps)

    def walked_policy_value(layer, q_values):
      # `backward` visits the decision layers last to first.
      step = next(steps)
      if step is None:
        probabilities = policy[layer.decision_rows]
      else:
        children, finished_step = step
        probabilities = logit.softmax(
            cumulative[children] + finished_step * values[children],
            layer.legal, axis=1)
      return (probabilities * q_values).sum(axis=1)

    return self._engine.backward(mean_field, walked_policy_value, values)

  def _walk_steps(self, structure, learning_rate):
    """Per decision layer, last to first: None where the walked policy is
    the current one, else its children and lr where the depth-first walk
    finished the child before the state, 0 elsewhere; None if it is the
    current policy at every layer."""
    if (self._walk is None or self._walk[0] is not structure or
        self._walk[1] != learning_rate):
      rank = structure.dfs_rank
      steps = []
      for layer in reversed(structure.layers):
        if not len(layer.decision_ids):
          continue
        finished = (rank[layer.decision_children] <
                    rank[layer.decision_ids, None]) & layer.legal
        walked = (finished.any(axis=1) &
                  (layer.legal.sum(axis=1) > 1)).any()
        steps.append((layer.decision_children, learning_rate * finished)
                     if walked else None)
      self._walk = (structure, learning_rate,
                    steps if any(step is not None for step in steps)
                    else None)
    return self._walk[2]

  def iteration(self, learning_rate: float | None = None):
    """One mirror-descent step: evaluate, accumulate, project, propagate."""
    self._iteration += 1
    learning_rate = (self._lr if learning_rate is None else
                     parameters.check_real("learning_rate", learning_rate,
                                           0.0, low_open=True))
    self._cumulative_value = self._accumulated(learning_rate,
                                               first=self._iteration == 1)
    self._mean_field = self._engine.mean_field(self._projected_policy)

  def _accumulated(self, learning_rate, first):
    """y + lr * V at the reachable states (a new array), V the value of
    the policy an iteration evaluates (`first`: the first iteration)."""
    self._grow_cumulative_value()
    values = self._evaluate(learning_rate, first)
    # V is 0 at the nodes the flow's structure does not reach and at its
    # sentinel (the last entry), so adding lr * V leaves y there; the engine
    # may have found nodes since this mean field (another solver sharing
    # it), which V does not cover yet.
    values *= learning_rate  # the evaluation's own array
    if len(values) == len(self._cumulative_value):
      return np.add(values, self._cumulative_value, out=values)
    cumulative = self._cumulative_value.copy()
    cumulative[:len(values)] += values
    return cumulative

  @property
  def residual(self) -> float:
    """max |pi'(a|s) - pi(a|s)| over the decision rows, pi' the policy the
    next iteration (at `lr`) projects: the fixed-point residual of the
    mirror-descent update pi'(a|s) ∝ exp(y(child(s, a)) + lr V(child(s,
    a))) (Perolat et al., 2022, as OpenSpiel's MirrorDescent). Probability
    units, in [0, 1]; 0 exactly where the evaluated values V of every
    state's children are equal across its legal actions, a Nash equilibrium
    of the mean-field game in which every action is played. The update's
    size scales with lr, so at a small lr read it with `nash_conv`."""
    rows = np.arange(self._engine.num_rows)
    current = self._projected_policy(rows)
    children = self._engine.children_by_action[rows]
    following = logit.softmax(
        self._accumulated(self._lr, first=self._iteration == 0)[children],
        self._engine.legal[rows],
        axis=1)
    return float(np.max(np.abs(following - current), initial=0.0))

  def policy(self) -> mfg_engine.TablePolicy:
    """The current policy as an OpenSpiel policy (a snapshot; on an
    MFGLibEngine, MFGLib's policy tensor, `engine.table_policy`)."""
    return self._engine.table_policy(self.profile())

  def profile(self) -> np.ndarray:
    """pi(a|s): array (num_rows, num_distinct_actions), 0 at illegal
    actions."""
    return self._mean_field.policy
