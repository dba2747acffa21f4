"""``optuna``: Bayesian optimisation (TPE) of log λ on the student's validation R².

The study lives in an Optuna storage: by default an SQLite file ``optuna.db`` in the run
directory (in memory when there is none); ``storage=URL`` names any Optuna storage, and running
again with the same URL and data resumes the study, counting the trials already finished toward
``n_trials``. λ = 0 is evaluated beside the study when ``include_zero`` (log λ cannot reach it).
``batch=b`` asks the sampler for b λ at a time and trains their teachers together (faster; the
sampler then sees b results later, so the λ it proposes differ from one-at-a-time).
"""

from jacdistill import JacdistillError, Tuner, hookimpl
from jacdistill.metrics import rank_score
from jacdistill.options import Boolean, Interval, Text


class OptunaTuner(Tuner):
    name = "optuna"
    defaults = {
        "n_trials": 10,
        "lo": 1e-4,
        "hi": 1.0,
        "include_zero": True,
        "storage": None,
        "study_name": None,
        "batch": 1,
    }
    constraints = {
        "n_trials": Interval(int, 1, None),
        "lo": Interval(float, 0, None, closed="neither"),
        "hi": Interval(float, 0, None, closed="neither"),
        "include_zero": Boolean,
        "storage": [Text, None],
        "study_name": [Text, None],
        "batch": Interval(int, 1, None),
    }

    @classmethod
    def check_options(cls, options):
        if not options["lo"] < options["hi"]:
            raise cls.option_error("lo", f"below hi={options['hi']!r}", options["lo"])

    def storage_url(self, search):
        if self.options["storage"]:
            return str(self.options["storage"])
        return f"sqlite:///{search.workdir / 'optuna.db'}" if search.workdir else None

    def tune(self, search):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures re-raise; no log noise
        try:
            study = optuna.create_study(
                study_name=self.options["study_name"] or f"jacdistill-{search.fingerprint}",
                storage=self.storage_url(search),
                load_if_exists=True,
                direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=self.seed),
            )
        except Exception as exc:  # a malformed or unreachable storage URL
            raise JacdistillError(
                f"optuna: cannot open storage {self.storage_url(search)!r}: "
                f"{type(exc).__name__}: {exc}".splitlines()[0]
            ) from None
        lo, hi = self.options["lo"], self.options["hi"]

        finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        remaining = max(0, self.options["n_trials"] - finished)
        while remaining:  # ask for a batch of λ, train their teachers together, tell the scores
            asked = [study.ask() for _ in range(min(self.options["batch"], remaining))]
            try:
                trials = search.teachers([t.suggest_float("lam", lo, hi, log=True) for t in asked])
                scores = [max(rank_score(search.student_r2(trial)), -1e9) for trial in trials]
            except BaseException:  # an interrupted batch is failed, not left running in the study
                for t in asked:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                raise
            for t, score in zip(asked, scores):
                study.tell(t, score)
            remaining -= len(asked)
        candidates = [search.teacher(study.best_params["lam"])]  # retrained if found by an earlier run
        if self.options["include_zero"]:
            candidates.append(search.teacher(0.0))
        search.student_r2s(candidates)
        return max(candidates, key=lambda t: rank_score(t.student_r2_val))


@hookimpl
def register_tuners(register):
    register(OptunaTuner)
