//! vscp-websocksrv (being written)
