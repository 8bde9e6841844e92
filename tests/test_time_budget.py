"""A time budget fits the number of training steps to this computer's measured step time."""

from agent_training.finetune import MIN_BUDGET_STEPS, budget_message, fit_steps_to_budget


def test_the_steps_that_fit_the_remaining_budget():
    # 2 steps done, 8 s a step, 200 s left: 25 more fit
    assert fit_steps_to_budget(60, 2, 8.0, 200.0) == 27
    assert fit_steps_to_budget(60, 2, 1.0, 500.0) == 60  # never more than asked for


def test_a_budget_never_cuts_below_the_minimum_or_the_steps_done():
    assert fit_steps_to_budget(60, 2, 36.0, 50.0) == MIN_BUDGET_STEPS
    assert fit_steps_to_budget(6, 2, 36.0, 0.0) == 6  # a short run is not lengthened
    assert fit_steps_to_budget(60, 12, 36.0, -5.0) == 12


def test_the_message_says_what_the_user_gives_up():
    plan = {"requested": 60, "total": 27, "s_per_step": 8.04, "budget_s": 240.0}
    assert budget_message(plan) == (
        "A step takes 8.0 s on this computer: 27 of 60 steps fit the 4-minute budget, so the agent sees 45% "
        "of the examples it would have (the full run: tiller train --steps 60)."
    )
    assert budget_message(plan | {"total": 60}).endswith("all 60 steps fit the 4-minute budget.")
    assert "fit the 40-second budget" in budget_message(plan | {"budget_s": 40.0})
    assert budget_message(plan, "kay.mann@enron.com").endswith("tiller train --sender kay.mann@enron.com --steps 60).")
