"""The paper's games, registered with pyspiel as they are imported.

`import vsg_spiel` imports this package, so every game below can then be
loaded by name with `pyspiel.load_game`. Each game module registers itself at
its bottom with `pyspiel.register_game`, as OpenSpiel's own Python games do.
"""

from vsg_spiel.games import differential
from vsg_spiel.games import routing
