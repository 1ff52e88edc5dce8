"""A getBatch answer whose body breaks off is asked again: both ways azure-core's requests transport reports it
(azure/core/pipeline/transport/_requests_basic.py, StreamDownloadGenerator) become ServiceResponseError, the
error `_batch_window` retries. (The emulator's `truncate` fault drives the first way end to end, in
integration/test_reliability.py; the second needs a reset racing unread bytes, so it is built here from the
exceptions azure-core raises.)"""

import pytest
from azure.core.exceptions import HttpResponseError, IncompleteReadError, ServiceRequestError, ServiceResponseError
from requests.exceptions import ChunkedEncodingError

from doow_pipeline.azure.metrics_api import dropped_body_asked_again


def raised_through(error: BaseException) -> BaseException:
    with pytest.raises(BaseException) as caught, dropped_body_asked_again():
        raise error
    return caught.value


def test_a_body_that_ended_early_is_asked_again():
    cut = ChunkedEncodingError("('Connection broken: IncompleteRead(4934 bytes read, 4935 more expected)')")
    error = raised_through(IncompleteReadError(cut, error=cut))
    assert isinstance(error, ServiceResponseError) and "IncompleteRead" in str(error)


def test_a_read_broken_otherwise_is_asked_again():
    reset = ChunkedEncodingError("('Connection broken: ConnectionResetError(104, 'Connection reset by peer')')")
    error = raised_through(HttpResponseError(reset, error=reset))
    assert isinstance(error, ServiceResponseError) and "ConnectionResetError" in str(error)


def test_other_errors_pass_unchanged():
    refused = ServiceRequestError("connection refused")
    assert raised_through(refused) is refused
    bug = ValueError("not a transport error")
    assert raised_through(bug) is bug
