"""Log lines on a terminal go through tqdm, so that they never land inside a progress bar."""
import io
import logging

from tqdm import tqdm

from mfftools.cli.logs import TqdmHandler, install_handler


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _log_during_a_bar(stream):
    with tqdm(total=10, file=stream, desc="scoring", mininterval=0) as bar:
        bar.update(3)
        logging.getLogger("mfftools.somewhere").warning("halfway")
        bar.update(7)
    return stream.getvalue()


def test_on_a_terminal_a_log_line_gets_its_own_line_and_the_bar_is_redrawn():
    terminal = Terminal()
    assert isinstance(install_handler(terminal, logging.INFO), TqdmHandler)
    written = _log_during_a_bar(terminal)
    line = next(line for line in written.split("\n") if "halfway" in line)
    # whatever the bar drew on this line was cleared (carriage return) before the log line
    assert line.split("\r")[-1] == "WARNING mfftools.somewhere: halfway"
    after = written.split("halfway\n", 1)[1]
    assert "scoring:  30%" in after and "10/10" in after


def test_elsewhere_log_lines_are_written_plainly():
    stream = io.StringIO()
    handler = install_handler(stream, logging.INFO)
    assert type(handler) is logging.StreamHandler
    logging.getLogger("mfftools.somewhere").info("plain")
    logging.getLogger("mfftools.somewhere").debug("hidden")
    assert stream.getvalue() == "INFO mfftools.somewhere: plain\n"
