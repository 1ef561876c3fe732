package demo;

/** A standard MBean: plain counters and gauges of several Java types. */
public interface RequestsMBean {
    long getCount();

    int getErrors();

    double getLatencyMillis();

    double getBytesSent();

    float getLoadFactor();

    boolean isActive();

    String getStatus();

    /** Grows by one on every read, so scrapes can see a counter move. */
    long getTicks();
}
