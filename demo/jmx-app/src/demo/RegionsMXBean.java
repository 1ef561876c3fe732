package demo;

import java.util.Map;

/**
 * An MXBean: the JMX MXBean mapping turns the {@code Map} into the key/value TabularData and the
 * {@link RegionStats} bean into CompositeData, as the JDK's own platform MXBeans do.
 */
public interface RegionsMXBean {
    Map<String, Long> getEntries();

    RegionStats getBusiest();
}
