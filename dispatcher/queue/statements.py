"""Statements in a reply that a person must act on: a dispute, a bereavement, hardship, a complaint.

Phrases are per locale and per statement; every locale's phrases are matched, since a reply may
come in any language. A reply is normalised as revocations are (dispatcher.compliance.keywords:
case, width, accents, format characters, punctuation) and phrases match whole words, never
inside a word ("undisputed" is not "dispute"), except in scripts written without spaces.
`[queue.statements.<locale>]` in the config adds phrases to these defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatcher.compliance.keywords import MAX_CLASSIFIED, Phrases, normalize
from dispatcher.queue.items import Reason

STATEMENTS = (Reason.DISPUTE, Reason.BEREAVEMENT, Reason.HARDSHIP, Reason.COMPLAINT)

DEFAULT_PHRASES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "en": {
        "dispute": ("dispute", "disputed", "disputing", "i dispute", "not my debt",
                    "not my account", "i dont owe", "i do not owe", "dont owe you",
                    "never owed", "already paid", "i paid this", "validation notice",
                    "verify this debt", "validate this debt", "prove i owe"),
        "bereavement": ("passed away", "has died", "he died", "she died", "is deceased",
                        "deceased", "died", "funeral", "bereavement"),
        "hardship": ("hardship", "lost my job", "unemployed", "cant afford", "cannot afford",
                     "cant pay", "cannot pay", "no money", "medical bills", "in hospital",
                     "evicted", "homeless", "bankrupt", "bankruptcy"),
        "complaint": ("complaint", "complain", "complaining", "lawyer", "attorney",
                      "ombudsman", "cfpb", "regulator", "sue you", "report you",
                      "harassment"),
    },
    "es": {
        "dispute": ("disputo", "disputa", "no es mi deuda", "no debo", "no les debo",
                    "ya pague", "no reconozco"),
        "bereavement": ("fallecio", "fallecido", "fallecida", "murio", "ha muerto",
                        "difunto", "difunta", "funeral"),
        "hardship": ("perdi mi trabajo", "desempleado", "desempleada", "no puedo pagar",
                     "sin dinero", "no tengo dinero", "dificultades", "quiebra"),
        "complaint": ("queja", "reclamo", "reclamacion", "abogado", "demanda",
                      "denunciar"),
    },
    "zh": {
        "dispute": ("不是我的债", "不是我欠的", "我没有欠", "我没欠", "已经还了", "有异议", "异议",
                    "不認", "不是我欠", "異議"),
        "bereavement": ("去世", "过世", "過世", "死了", "已故", "身故", "葬礼", "葬禮"),
        "hardship": ("失业", "失業", "没钱", "沒錢", "还不起", "還不起", "困难", "困難", "破产",
                     "破產", "住院"),
        "complaint": ("投诉", "投訴", "举报", "舉報", "律师", "律師", "起诉", "起訴"),
    },
}


class StatementMatcher:
    """Finds statements in a reply."""

    def __init__(self, extra: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> None:
        merged: dict[Reason, list[str]] = {r: [] for r in STATEMENTS}
        for source in (DEFAULT_PHRASES, extra or {}):
            for by_statement in source.values():
                for statement, phrases in by_statement.items():
                    merged[Reason(statement)].extend(phrases)
        self._phrases = {r: Phrases(tuple(p)) for r, p in merged.items()}

    def find(self, body: str) -> tuple[Reason, ...]:
        """The statements the reply makes, in a fixed order; none for most replies."""
        text = normalize(body[:MAX_CLASSIFIED])
        if not text:
            return ()
        spaced, compact = f" {text} ", text.replace(" ", "")
        return tuple(r for r in STATEMENTS if self._phrases[r].found_in(spaced, compact))


DEFAULT_MATCHER = StatementMatcher()
