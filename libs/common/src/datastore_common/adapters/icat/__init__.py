"""ICAT adapters: python-icat (SOAP, suds) behind the ``Sessions``, ``Catalogue``,
``Selections`` and ``Vocabulary`` ports.

Building a python-icat ``Client`` costs about 55 ICAT calls (WSDL, XSD, one ``getEntityInfo``
per entity), so clients are long-lived and built lazily by ``pool.IcatClientPool``. suds is
blocking and a suds client is not safe for concurrent use by several threads, so every call
runs on a small dedicated thread pool and each client serves one call at a time. ICAT faults
and wire failures become :mod:`datastore_common.errors` types (``errors.translate_icat_error``),
so callers branch on the kind of failure.

Bulk work (createMany of datafiles and parameters, many parameter updates, searches of
thousands of rows) goes through ``wire.SoapWire``: the same SOAP as suds writes, from
templates suds made once, instead of one suds object (~1.5 ms) per bean.

- ``errors``: suds/python-icat/network failures -> ``errors`` types;
- ``pool``: the client pool, ``raw_call``, the functional account's shared session;
- ``sessions``: ``IcatSessions``, users' logins and session checks (gateway);
- ``jpql``: literals, ``IN`` lists, ``chunks``, row values;
- ``wire``: ``SoapWire``, bulk SOAP from suds's own templates;
- ``get_or_create``: get-or-create of one entity, and of many with createMany;
- ``references``: facility-scoped reference entities and archival parameter types, cached;
- ``parameters``: reading and writing the archival parameters;
- ``catalogue``: ``IcatCatalogue``, the ``Catalogue`` port (icat-writer, status-poller);
- ``selections``: ``IcatSelections``, restore selections as the user (gateway);
- ``vocabulary``: ``IcatVocabulary``, which reference names exist (gateway).
"""
