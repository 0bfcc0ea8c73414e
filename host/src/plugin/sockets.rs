//! `wasi:sockets`, linked so that components which import it load (CPython's, through
//! wasi-libc, always does), and denied whole: no socket can be created, bound or connected,
//! no name looked up. A plugin's only way out is `wasi:http` through the outbound gate.

use super::host::CallState;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::sockets::{
    instance_network, ip_name_lookup, network, tcp, tcp_create_socket, udp, udp_create_socket,
};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsCtxView, WasiSocketsView};

/// Deny every use of the network to the context being built. wasmtime-wasi denies all of it
/// by default; saying so here keeps a future default from opening a door, and a call's
/// context is built only through this.
pub(crate) fn deny_all(builder: &mut WasiCtxBuilder) -> &mut WasiCtxBuilder {
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
}

/// Link every `wasi:sockets` interface with wasmtime-wasi's own implementation, which
/// answers each call from the call's WASI context (built by [`deny_all`]).
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    let l = linker;
    network::add_to_linker::<CallState, WasiSockets>(l, &Default::default(), view)?;
    instance_network::add_to_linker::<CallState, WasiSockets>(l, view)?;
    tcp_create_socket::add_to_linker::<CallState, WasiSockets>(l, view)?;
    tcp::add_to_linker::<CallState, WasiSockets>(l, view)?;
    udp_create_socket::add_to_linker::<CallState, WasiSockets>(l, view)?;
    udp::add_to_linker::<CallState, WasiSockets>(l, view)?;
    ip_name_lookup::add_to_linker::<CallState, WasiSockets>(l, view)?;
    Ok(())
}

fn view(state: &mut CallState) -> WasiSocketsCtxView<'_> {
    state.sockets()
}

#[cfg(test)]
mod tests {
    use super::deny_all;
    use wasmtime::component::ResourceTable;
    use wasmtime_wasi::p2::SocketResult;
    use wasmtime_wasi::p2::bindings::sockets::instance_network::Host as _;
    use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::Host as _;
    use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};
    use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host as _;
    use wasmtime_wasi::p2::bindings::sockets::udp_create_socket::Host as _;
    use wasmtime_wasi::sockets::WasiSocketsCtxView;
    use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

    fn code<T>(r: SocketResult<T>) -> ErrorCode {
        match r {
            Ok(_) => panic!("the socket call must fail"),
            Err(e) => e.downcast().expect("an error code, not a trap"),
        }
    }

    /// Every entry point to the network, called as a guest would through the linked
    /// implementation, fails with the code a guest is told.
    async fn assert_denied(mut wasi: WasiCtx) {
        let mut table = ResourceTable::new();
        let mut s = WasiSocketsCtxView {
            ctx: wasi.sockets(),
            table: &mut table,
        };
        for family in [IpAddressFamily::Ipv4, IpAddressFamily::Ipv6] {
            assert!(matches!(
                code(s.create_tcp_socket(family)),
                ErrorCode::AccessDenied
            ));
            assert!(matches!(
                code(s.create_udp_socket(family).await),
                ErrorCode::AccessDenied
            ));
        }
        // Names, and addresses written as names, are not looked up.
        for name in ["localhost", "example.com", "127.0.0.1", "::1"] {
            let network = s.instance_network().unwrap();
            assert!(
                matches!(
                    code(s.resolve_addresses(network, name.into())),
                    ErrorCode::PermanentResolverFailure
                ),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn a_calls_context_denies_every_socket_and_lookup() {
        assert_denied(deny_all(&mut WasiCtxBuilder::new()).build()).await;
    }

    #[tokio::test]
    async fn wasmtime_wasi_denies_them_by_default_too() {
        assert_denied(WasiCtxBuilder::new().build()).await;
    }
}
