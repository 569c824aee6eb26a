"""The loader validates every file and names file, entry and field in each error."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from bot import knowledge
from tests.conftest import MINI


def make_kb(tmp_path: Path, extra: str, name: str = "extra.yaml") -> Path:
    root = tmp_path / "kb"
    shutil.copytree(MINI, root)
    (root / name).write_text(textwrap.dedent(extra), encoding="utf-8")
    return root


def problems_of(root: Path) -> list[str]:
    with pytest.raises(knowledge.KnowledgeError) as exc:
        knowledge.load(root)
    return exc.value.problems


def test_mini_loads_with_counts(mini_kb):
    assert mini_kb.counts() == {"sources": 2, "trends": 2, "faqs": 1, "tips": 2, "aliases": 3}
    assert mini_kb.trends["serverless"].tools == ("AWS Lambda", "Azure Functions")
    assert mini_kb.as_of(("src-a", "src-b")) == "Feb 2025"
    assert mini_kb.as_of(("src-b",)) == "2025"


def test_duplicate_id_across_files(tmp_path):
    root = make_kb(tmp_path, """
        tips:
          - id: tip-one
            text: Again.
            trend: serverless
            source: src-a
    """)
    problems = problems_of(root)
    assert any("extra.yaml" in p and "'tip-one'" in p and "'id'" in p and "duplicate id" in p for p in problems)


def test_duplicate_yaml_key_is_reported_with_line(tmp_path):
    root = make_kb(tmp_path, """
        tips:
          - id: tip-dup-key
            text: First.
            text: Second.
            trend: serverless
            source: src-a
    """)
    problems = problems_of(root)
    assert any("extra.yaml" in p and "'text'" in p and "duplicate key (line 5)" in p for p in problems)


def test_missing_and_empty_fields(tmp_path):
    root = make_kb(tmp_path, """
        faqs:
          - id: faq-broken
            question: ""
            alternates: [a, b, c]
            trend: serverless
            sources: [src-a]
    """)
    problems = problems_of(root)
    assert "extra.yaml: entry 'faq-broken': field 'question': empty" in problems
    assert "extra.yaml: entry 'faq-broken': field 'answer': missing" in problems


def test_unknown_references(tmp_path):
    root = make_kb(tmp_path, """
        trends:
          - id: ghost
            title: Ghost
            summary: Nothing.
            points: [one]
            related: [nowhere]
            sources: [src-z]
    """)
    problems = problems_of(root)
    assert "extra.yaml: entry 'ghost': field 'related': unknown trend id 'nowhere'" in problems
    assert "extra.yaml: entry 'ghost': field 'sources': unknown source id 'src-z'" in problems


@pytest.mark.parametrize("value, word", [("yes", "boolean"), ("off", "boolean"), ("2025-01-07", "date"), ("3.11", "number")])
def test_yaml_11_surprises_are_refused(tmp_path, value, word):
    root = make_kb(tmp_path, f"""
        tips:
          - id: tip-surprise
            text: {value}
            trend: serverless
            source: src-a
    """)
    problems = problems_of(root)
    assert any("'tip-surprise'" in p and "'text'" in p and f"got a {word}" in p and "quote" in p for p in problems)


def test_alias_that_yaml_reads_as_boolean(tmp_path):
    root = make_kb(tmp_path, """
        aliases:
          on: online
    """)
    assert any("aliases" in p and "boolean" in p for p in problems_of(root))


def test_unknown_field_and_section(tmp_path):
    root = make_kb(tmp_path, """
        tipps: []
        tips:
          - id: tip-extra
            text: Fine.
            trend: serverless
            source: src-a
            colour: red
    """)
    problems = problems_of(root)
    assert any("'tipps'" in p and "unknown section" in p for p in problems)
    assert "extra.yaml: entry 'tip-extra': field 'colour': unknown field for a tip" in problems


def test_too_few_alternates(tmp_path):
    root = make_kb(tmp_path, """
        faqs:
          - id: faq-few
            question: Why?
            alternates: [one]
            answer: Because.
            trend: serverless
            sources: [src-a]
    """)
    assert any("'faq-few'" in p and "'alternates'" in p and "at least 3" in p for p in problems_of(root))


def test_malformed_yaml_names_file_and_line(tmp_path):
    root = make_kb(tmp_path, "tips:\n  - id: x\n    text: [unclosed\n", name="broken.yaml")
    problems = problems_of(root)
    assert len(problems) == 1
    assert problems[0].startswith("broken.yaml: not valid YAML (line ")


def test_all_problems_are_listed_at_once(tmp_path):
    root = make_kb(tmp_path, """
        tips:
          - id: Bad_Id
            text: yes
            trend: nowhere
            source: src-a
    """)
    problems = problems_of(root)
    assert len(problems) >= 3


def test_conflicting_alias(tmp_path):
    root = make_kb(tmp_path, """
        aliases:
          k8s: kube
    """)
    assert any("'k8s'" in p and "already maps to 'kubernetes'" in p for p in problems_of(root))


def test_missing_folder(tmp_path):
    assert "knowledge folder not found" in problems_of(tmp_path / "nope")[0]


def test_digest_changes_with_content(tmp_path, mini_kb):
    root = make_kb(tmp_path, "aliases:\n  gql: graphql\n")
    assert knowledge.load(root).digest != mini_kb.digest


# -- hostile files ----------------------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A billion laughs in YAML: ~1.3 KB that expands to width**levels values."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once_naming_the_file(tmp_path):
    root = make_kb(tmp_path, alias_bomb(), name="bomb.yaml")
    assert (root / "bomb.yaml").stat().st_size < 1500
    import time

    began = time.perf_counter()
    (problem,) = problems_of(root)
    assert time.perf_counter() - began < 1.0
    assert problem.startswith("bomb.yaml:") and "alias bomb" in problem


def test_a_bomb_hidden_inside_an_entry_is_refused_too(tmp_path):
    bomb = "".join(f"      {line}\n" for line in alias_bomb().splitlines())
    root = make_kb(tmp_path, "tips:\n  - id: tip-x\n    text: x\n    trend: serverless\n    source: src-a\n"
                             f"    extra:\n{bomb}")
    (problem,) = problems_of(root)
    assert problem.startswith("extra.yaml:") and "alias bomb" in problem


def test_a_self_referring_alias_is_refused(tmp_path):
    root = make_kb(tmp_path, "tips: &loop [*loop]\n")
    (problem,) = problems_of(root)
    assert problem.startswith("extra.yaml:") and "refers to the node that contains it" in problem


def test_a_few_aliases_are_fine(tmp_path):
    root = make_kb(tmp_path, """
        tips:
          - id: tip-x
            text: &t Keep secrets out of logs.
            trend: serverless
            source: src-a
          - id: tip-y
            text: *t
            trend: serverless
            source: src-a
    """)
    assert knowledge.load(root).tips["tip-y"].text == "Keep secrets out of logs."


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    root = make_kb(tmp_path, "tips: []\n# " + "x" * 5_000_000 + "\n", name="huge.yaml")
    (problem,) = problems_of(root)
    assert problem.startswith("huge.yaml:") and "at most 4,194,304" in problem
    root2 = make_kb(tmp_path / "small", "tips: []\n# " + "x" * 3000 + "\n", name="big.yaml")
    (problem,) = problems_of_with(root2, max_bytes=2048)
    assert "at most 2,048" in problem


def problems_of_with(root: Path, **kw) -> list[str]:
    with pytest.raises(knowledge.KnowledgeError) as exc:
        knowledge.load(root, **kw)
    return exc.value.problems


def test_an_empty_file_is_a_warning_not_an_error(tmp_path, caplog):
    root = make_kb(tmp_path, "", name="empty.yaml")
    kb = knowledge.load(root)
    assert kb.warnings == ("empty.yaml: the file is empty, so it adds nothing",)
    assert "empty.yaml: the file is empty" in caplog.text


def test_a_file_that_vanishes_while_it_is_read_is_a_problem_not_a_crash(tmp_path, monkeypatch):
    root = make_kb(tmp_path, "tips: []\n", name="vanishing.yaml")
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "vanishing.yaml":
            raise FileNotFoundError(2, "No such file or directory")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    (problem,) = problems_of(root)
    assert problem.startswith("vanishing.yaml: could not be read (No such file or directory)")
