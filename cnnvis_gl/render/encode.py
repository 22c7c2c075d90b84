"""Write frames to a video file: H.264 MP4 through PyAV (FFmpeg ships in its wheels), or an
animated GIF through Pillow (short loops)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["FORMATS", "MAX_GIF_FRAMES", "VideoWriter", "VideoWriters"]

FORMATS = (".mp4", ".gif")
MAX_GIF_FRAMES = 1800  # a minute at 30 fps; GIF frames are held in memory until the end


class VideoWriter:
    """Frames in, a file out; the format from the suffix of ``path`` (``.mp4`` or ``.gif``).

    Parameters
    ----------
    path
        The file to write (its folder is created). It is written under a temporary name and
        renamed at :meth:`close`, so a failed export never leaves a broken file behind, nor
        destroys an older one before the new one is complete.
    size
        ``(width, height)`` of every frame; H.264 needs both even.
    fps
        Frames per second.
    quality
        H.264's constant rate factor (0 best … 51 worst; 18 is visually lossless).
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, quality: int = 18) -> None:
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in FORMATS:
            raise ValueError(f"{self.path}: write a {' or '.join(FORMATS)} file (not {self.kind or 'no suffix'!r})")
        self.size = (int(size[0]), int(size[1]))
        if self.kind == ".mp4" and (self.size[0] % 2 or self.size[1] % 2):
            raise ValueError(f"{self.size[0]}x{self.size[1]}: an H.264 video needs an even width and height")
        if not 0 < fps <= 240:
            raise ValueError(f"fps {fps}: use 1 to 240 frames per second")
        self.fps, self.frames = float(fps), 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.kind}")
        self._gif: list = []
        self._container = None
        if self.kind == ".mp4":
            from fractions import Fraction

            import av

            self._container = av.open(str(self._tmp), mode="w")
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = self.size
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(int(quality)), "preset": "medium"}

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB (or RGBA) ``uint8`` frame of the writer's size."""
        h, w = frame.shape[:2]
        if (w, h) != self.size:
            raise ValueError(f"a {w}x{h} frame in a {self.size[0]}x{self.size[1]} video")
        rgb = np.ascontiguousarray(frame[..., :3])
        if self.kind == ".gif":
            if len(self._gif) >= MAX_GIF_FRAMES:
                raise ValueError(
                    f"a GIF of more than {MAX_GIF_FRAMES} frames: write an .mp4, or a shorter or slower one"
                )
            from PIL import Image

            self._gif.append(Image.fromarray(rgb).quantize(256, method=Image.Quantize.MEDIANCUT))
        else:
            import av

            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self.kind == ".gif":
            if not self._gif:
                raise ValueError("no frames to write")
            self._gif[0].save(
                self._tmp, save_all=True, append_images=self._gif[1:], loop=0,
                duration=round(1000.0 / self.fps), optimize=False, disposal=1,
            )  # fmt: skip
            self._gif = []
        elif self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file (the target is left as it was)."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - already failing; the file is removed anyway
                pass
            self._container = None
        self._gif = []
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, et: type | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if et is None:
            self.close()
        else:
            self.abort()


class VideoWriters:
    """The same frames to several files (an MP4 and a GIF of it); closed or aborted together."""

    def __init__(self, paths: list[str | Path], size: tuple[int, int], fps: float) -> None:
        self.writers: list[VideoWriter] = []
        try:
            for p in paths:
                self.writers.append(VideoWriter(p, size, fps))
        except BaseException:
            self.abort()
            raise

    @property
    def path(self) -> Path:
        return self.writers[0].path

    @property
    def paths(self) -> list[Path]:
        return [w.path for w in self.writers]

    @property
    def frames(self) -> int:
        return self.writers[0].frames

    def write(self, frame: np.ndarray) -> None:
        for w in self.writers:
            w.write(frame)

    def abort(self) -> None:
        for w in self.writers:
            w.abort()

    def __enter__(self) -> VideoWriters:
        return self

    def __exit__(self, et: type | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if et is None:
            try:
                for w in self.writers:
                    w.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
