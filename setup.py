"""vsg_spiel: Variational Stochastic Games as an OpenSpiel plugin collection.

One distribution, one import name. The top-level `games/`, `algorithms/` and
`eval/` folders are installed as `vsg_spiel.games`, `vsg_spiel.algorithms` and
`vsg_spiel.eval` through `package_dir`; they are never top-level packages.
"""

import setuptools

setuptools.setup(
    name="vsg_spiel",
    version="0.1.0",
    description=("Variational Stochastic Games (Zhao & Zhang, "
                 "arXiv 2503.06037) "
                 "as OpenSpiel games and solvers"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=[
        "vsg_spiel",
        "vsg_spiel.games",
        "vsg_spiel.algorithms",
        "vsg_spiel.eval",
    ],
    package_dir={
        "vsg_spiel": "vsg_spiel",
        "vsg_spiel.games": "games",
        "vsg_spiel.algorithms": "algorithms",
        "vsg_spiel.eval": "eval",
    },
    # Lower bounds are the versions the test suite has been run with.
    install_requires=[
        "open_spiel>=2.0.2",
        "numpy>=2.4",
        # Sparse transition matrices of the Markov-game core, the convex
        # equilibrium problem of the routing game and linear programs.
        "scipy>=1.17",
        # The compiled path-following kernel of the logit QRE on normal-form
        # games (homotopy_kernel): numpy's per-call interpreter overhead
        # (10-25 calls per step) made our trace 2-3x slower than Gambit's
        # C++ on the catalog's small games; compiled it is faster (ratios
        # in the README).
        "numba>=0.68",
        "tensorflow>=2.21",
        "absl-py>=2.5",
        "matplotlib>=3.11",
        # OpenSpiel's own baselines that the eval binaries run import these
        # without declaring them: JPSRO and correlated Q-learning need cvxpy
        # with the ECOS solver,
        # Nash-Q and matrix_nash need nashpy.
        "cvxpy>=1.9",
        "ecos>=2.0",
        "nashpy>=0.0.43",
    ],
    extras_require={
        # The report's --backend=ray runs its cells on a Ray cluster.
        "ray": ["ray>=2.60"],
        # Peer libraries that tests and benchmarks compare against (their
        # tests are skipped when they are absent). Gambit's logit QRE is the
        # reference of the homotopy solver (16.7 builds from source on
        # Python 3.11, about an hour on 2 cores); sgamesolver (stochastic-game
        # QRE homotopy) builds from source and needs numpy, Cython, wheel and
        # a setuptools newer than a fresh venv's installed first (`pip install
        # -U numpy Cython setuptools wheel`), then `pip install
        # --no-build-isolation sgamesolver`. MFGLib (tests/test_mfglib.py,
        # benchmarks/mfg.py): torch is pinned to the CPU build kept on this
        # project's machines (a newer or open range downloads the multi-GB
        # CUDA build); mfglib
        # 0.3.0 itself requires osqp<1.0, which cvxpy>=1.9 (above) excludes,
        # so it is not listed: install it afterwards with
        # `pip install --no-deps mfglib==0.3.0` (osqp serves only its
        # OccupationMeasureInclusion solver); optuna and rich are its other
        # requirements.
        "peers": ["pygambit>=16.7", "sgamesolver>=1.0.2", "torch==2.13.0",
                  "optuna>=3.0,<4.0", "rich>=14.0,<15.0"],
        # ruff: the lint step of .ci/run (configuration in pyproject.toml).
        # pettingzoo (with gymnasium, its only new dependency): the games'
        # `parallel_env` ParallelEnvs (games/pettingzoo_env.py) and their tests.
        # pytest-xdist: the suite runs on all cores (pyproject.toml).
        "test": ["pytest>=9.0", "pytest-xdist>=3.8", "hypothesis>=6.150",
                 "ray>=2.60", "ruff>=0.15", "pettingzoo>=1.27"],
    },
    entry_points={
        "console_scripts": ["vsg-report=vsg_spiel.eval.report:run_main"],
    },
)
