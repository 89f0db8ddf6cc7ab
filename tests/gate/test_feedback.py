import pytest

from gate.decision import Reason
from gate.feedback import CatalogueError, load_catalogue


def test_every_reason_has_a_message_in_tibetan_chinese_and_english():
    catalogue = load_catalogue()
    assert set(catalogue) == set(Reason)
    for message in catalogue.values():
        assert any("\u0f00" <= ch <= "\u0fff" for ch in message.bo), message.bo  # Tibetan script block
        assert any("\u4e00" <= ch <= "\u9fff" for ch in message.zh), message.zh
        assert message.en.isascii()


def test_a_missing_translation_is_a_start_up_error_naming_it():
    with pytest.raises(CatalogueError, match=r"\[valid\] has no 'bo' text"):
        load_catalogue('[valid]\nzh = "欢迎"\nen = "Welcome"\n')
