package io.duet.proxy.routing;

/** The service type {@link java.util.ServiceLoader} finds {@link DecodePolicy} makers by. */
public interface DecodePolicyFactory extends PolicyFactory<DecodePolicy> {
}
