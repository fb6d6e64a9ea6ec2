package io.duet.proxy.routing;

/** The service type {@link java.util.ServiceLoader} finds {@link PrefillPolicy} makers by. */
public interface PrefillPolicyFactory extends PolicyFactory<PrefillPolicy> {
}
