"""The suite's own switches: under ``CNNVIS_REQUIRE_ALL=1`` (CI) a missing capability fails the
test instead of skipping it, and only the capability's own error counts as missing."""

from __future__ import annotations

import conftest
import pytest


def test_missing_skips_here_and_fails_under_require_all(monkeypatch):
    monkeypatch.setattr(conftest, "REQUIRE_ALL", False)
    with pytest.raises(pytest.skip.Exception, match="no CIFAR"):
        conftest.missing("no CIFAR")
    monkeypatch.setattr(conftest, "REQUIRE_ALL", True)
    with pytest.raises(pytest.fail.Exception, match="no CIFAR .*CNNVIS_REQUIRE_ALL=1"):
        conftest.missing("no CIFAR")


def test_only_the_contexts_own_error_means_no_opengl(monkeypatch):
    import cnnvis_gl.render as render

    def no_egl():
        raise RuntimeError("no headless OpenGL 3.3 context: EGL_NOT_INITIALIZED")

    def bug():
        raise TypeError("a bug in context creation")

    monkeypatch.setattr(conftest, "REQUIRE_ALL", True)
    monkeypatch.setattr(render, "create_context", no_egl)
    with pytest.raises(pytest.fail.Exception, match="EGL_NOT_INITIALIZED"):
        conftest.gl_context_or_missing()
    monkeypatch.setattr(conftest, "REQUIRE_ALL", False)
    with pytest.raises(pytest.skip.Exception):
        conftest.gl_context_or_missing()
    monkeypatch.setattr(render, "create_context", bug)  # a regression is a failure, never a skip
    with pytest.raises(TypeError, match="a bug"):
        conftest.gl_context_or_missing()
