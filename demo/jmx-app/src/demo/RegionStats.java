package demo;

import java.beans.ConstructorProperties;

/** A value class the MXBean mapping exposes as CompositeData (its getters become the keys). */
public final class RegionStats {
    private final String region;
    private final long requests;

    @ConstructorProperties({"region", "requests"})
    public RegionStats(String region, long requests) {
        this.region = region;
        this.requests = requests;
    }

    public String getRegion() {
        return region;
    }

    public long getRequests() {
        return requests;
    }
}
