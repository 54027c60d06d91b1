"""The step kit both the DR pipeline and the rollout use: a journal of steps that a rerun resumes
(:mod:`.journal`), the step runner with budgets and retries (:mod:`.steps`) and the timeline of a run
(:mod:`.timeline`). It belongs to neither: ``bootstrap`` and ``rollout`` import it, it imports neither."""
