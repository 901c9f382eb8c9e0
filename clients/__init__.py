"""Clients of the Resonate gateway; they depend only on the documented protocol
(:mod:`resonate_protocol`) and public libraries, never on the server's packages.

* :mod:`clients.python_client`: asyncio client library (:class:`ResonateClient`);
  :mod:`clients.download` (``fetch`` with resume), :mod:`clients.file_stream`
  (:func:`stream_to_file`), :mod:`clients.upload`, :mod:`clients.inbox`;
* :mod:`clients.stream_cli`: the ``resonate stream`` command;
* ``clients/streamlit_app.py``: a Streamlit page.
"""
