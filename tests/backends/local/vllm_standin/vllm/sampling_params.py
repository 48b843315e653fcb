import enum


class RequestOutputKind(enum.Enum):  # vLLM's values
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2
