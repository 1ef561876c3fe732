package demo;

import java.util.concurrent.atomic.AtomicLong;

/** Fixed values (tests assert them) plus one counter that moves on every read. */
public final class Requests implements RequestsMBean {
    private final long count;
    private final AtomicLong ticks = new AtomicLong();

    public Requests(long count) {
        this.count = count;
    }

    @Override
    public long getCount() {
        return count;
    }

    @Override
    public int getErrors() {
        return 3;
    }

    @Override
    public double getLatencyMillis() {
        return 12.5;
    }

    @Override
    public double getBytesSent() {
        // Large enough that Java prints it in E notation: 1.7E9.
        return 1.7e9;
    }

    @Override
    public float getLoadFactor() {
        return 0.75f;
    }

    @Override
    public boolean isActive() {
        return true;
    }

    @Override
    public String getStatus() {
        return "running";
    }

    @Override
    public long getTicks() {
        return ticks.incrementAndGet();
    }
}
