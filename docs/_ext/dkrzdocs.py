"""Sphinx extension: pages written from the code at build time, so they cannot drift from it.

- ``dkrz-config-reference:: SLUG``: one topic of the configuration reference (its title, its paragraph for site
  admins, its settings with their help texts), from :func:`dkrzspawner.config_reference.render_topic`, the same
  generator the unit tests check; the build fails when a configurable trait is in no topic or in two;
- ``dkrz-config-index``: every setting from A to Z with its topic, and the JupyterHub settings whose default
  dkrzspawner computes (:func:`dkrzspawner.config_reference.render_index`);
- ``dkrz-reasons``: Slurm's pending reasons and end states with the words users see, from
  :mod:`dkrzspawner.reasons` (``:kind: pending`` or ``:kind: end``).
"""

from __future__ import annotations

import inspect

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from dkrzspawner import config_reference, reasons


class GeneratedDirective(SphinxDirective):
    """A directive whose content is reStructuredText made by :meth:`text`; its page is rebuilt when the
    modules it reads change. A ValueError from the generator is a build error."""

    has_content = False

    def sources(self) -> list:
        """The objects whose source files the text comes from."""
        raise NotImplementedError

    def text(self) -> str:
        """The reStructuredText to insert."""
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        try:
            for source in self.sources():
                self.env.note_dependency(inspect.getsourcefile(source))
            text = self.text()
        except ValueError as exc:  # the code and the docs disagree: a build error naming what is wrong
            raise self.error(str(exc)) from None
        container = nodes.section()
        container.document = self.state.document
        lines = StringList(text.splitlines(), source=type(self).__name__)
        nested_parse_with_titles(self.state, lines, container)
        return container.children


def _config_sources(topics) -> list:
    """The classes that define the topics' settings (whichever mixin), and the table of topics itself."""
    owners = {setting.trait.this_class for topic in topics for setting in config_reference.settings(topic)}
    return [config_reference, *sorted(owners, key=lambda cls: cls.__qualname__)]


class ConfigReference(GeneratedDirective):
    """One topic of the configuration reference, named by its slug."""

    required_arguments = 1

    def sources(self):
        return _config_sources([config_reference.topic_by_slug(self.arguments[0])])

    def text(self):
        return config_reference.render_topic(self.arguments[0])


class ConfigIndex(GeneratedDirective):
    """Every setting with its topic."""

    def sources(self):
        return _config_sources(config_reference.TOPICS)

    def text(self):
        return config_reference.render_index()


class Reasons(GeneratedDirective):
    """A table of Slurm's words and ours: pending reasons or end states."""

    option_spec = {"kind": lambda value: directives.choice(value, ("pending", "end"))}

    def sources(self):
        return [reasons]

    def text(self):
        if self.options.get("kind") == "end":
            rows = [(state, reasons.explain_end(state)) for state in reasons.END_STATES]
            header = ("Slurm's state", "What the home page says")
        else:
            rows = [(reason, reasons.explain_pending(reason) + ".") for reason in reasons.PENDING_REASONS]
            rows.append(("AssocGrpCPURunMinutesLimit (and the other group limits)",
                         reasons.explain_pending("AssocGrpCPURunMinutesLimit") + "."))
            header = ("Slurm's reason", "What the progress page says")
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 1 2", "", f"   * - {header[0]}",
                 f"     - {header[1]}"]
        for left, right in rows:
            lines += [f"   * - {_literal(left)}", f"     - {_escape(right)}"]
        return "\n".join(lines)


def _literal(text: str) -> str:
    words, _, rest = text.partition(" (")
    return f"``{words}``" + (f" ({rest}" if rest else "")


def _escape(text: str) -> str:
    """Plain words with Slurm commands as inline literals (reasons.py quotes them with single backticks)."""
    return text.replace("`", "``").replace("*", r"\*")


def setup(app):
    """Register the directives."""
    app.add_directive("dkrz-config-reference", ConfigReference)
    app.add_directive("dkrz-config-index", ConfigIndex)
    app.add_directive("dkrz-reasons", Reasons)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
