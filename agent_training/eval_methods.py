"""The evaluation's methods and the paper's numbers they are reported beside: what
agent_training/evaluate.py runs and agent_training/eval_report.py writes up (one module both read,
so neither imports the other)."""

METHODS = ("agent", "small_zero_shot", "large_zero_shot", "large_few_shot", "naive_finetune", "r1_agent", "real_rules")
ADAPTER_METHODS = ("naive_finetune", "r1_agent")
# the voice stage (issue 2/5): the agent's rules -> M_L -> the profile's voice adapter, guarded. Run
# when asked (--method agent_voice) and every evaluated profile has a voice adapter.
VOICE_METHODS = ("agent_voice",)
# the agent's rules plus the k of the sender's own earlier emails most like the intent (local
# embeddings) as examples: run only when M_L is the local model, where the examples never leave the
# machine (issue 2/5); with a cloud M_L that would send real mail, so it is reported as not run
EXAMPLE_METHODS = ("agent_examples",)
ALL_METHODS = METHODS + VOICE_METHODS + EXAMPLE_METHODS
# paired differences are taken against this method (the target: the default pipeline against
# M_L zero-shot on the same held-out emails)
PAIRED_BASELINE = "large_zero_shot"
PAIRED_METRICS = ("authorship", "similarity", "content_fidelity", "voice_match")
# the agent's judged win rates in the paper (GPT-4o judge, Llama 3 8B agents), for the report to stand beside
PAPER_WIN_RATES = {
    "small_zero_shot": 84.1,
    "large_zero_shot": 74.1,
    "large_few_shot": 62.0,
    "naive_finetune": 83.9,
    "r1_agent": 63.4,
}
